package wasm

// lowestNice is the nice value of executors started at the lowest priority
// (PoolConfig.LowestPriority).
const lowestNice = 19
