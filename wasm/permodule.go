package wasm

// perModule is state kept per module for at most max modules: when one
// more would pass the bound, the module first seen is forgotten, so a
// long-lived pool or executor that meets an endless stream of modules
// does not grow without end. Not safe for concurrent use: its owner's
// lock guards it.
type perModule[V any] struct {
	m     map[string]V
	order []string // modules by first use
	max   int
}

func newPerModule[V any](max int) perModule[V] {
	return perModule[V]{m: map[string]V{}, max: max}
}

// get returns module's state, if it is remembered.
func (p *perModule[V]) get(module string) (V, bool) {
	v, ok := p.m[module]
	return v, ok
}

// getOrAdd returns module's state, made by fresh if it is not remembered.
func (p *perModule[V]) getOrAdd(module string, fresh func() V) V {
	if v, ok := p.m[module]; ok {
		return v
	}
	if len(p.order) >= p.max {
		delete(p.m, p.order[0])
		p.order = p.order[1:]
	}
	v := fresh()
	p.m[module] = v
	p.order = append(p.order, module)
	return v
}
