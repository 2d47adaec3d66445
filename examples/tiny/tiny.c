// tiny echoes its arguments, separated by spaces and ended by a newline, to
// stdout, like echo(1): with args ["7"] it writes "7\n". It is the smallest
// useful peergrid task: a module of well under a KiB whose run time is all
// sandbox overhead, for benchmarks of the grid itself.
//
// It uses no C library: it calls the four WASI preview 1 imports it needs
// directly, so it builds with a bare clang and wasm-ld (see build.sh) and the
// module stays tiny. The built tiny.wasm is committed next to this file.

typedef unsigned int u32;
typedef unsigned long size_t;

typedef struct {
	const char *buf;
	size_t len;
} ciovec;

#define WASI(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(#name)))

WASI(args_sizes_get) u32 args_sizes_get(u32 *argc, u32 *buf_size);
WASI(args_get) u32 args_get(char **argv, char *buf);
WASI(fd_write) u32 fd_write(u32 fd, const ciovec *iovs, size_t iovs_len, u32 *written);
WASI(proc_exit) _Noreturn void proc_exit(u32 code);

extern unsigned char __heap_base; // first free byte after the stack and data, from wasm-ld

enum { PAGE = 65536, STDOUT = 1 };

// alloc hands out n bytes from the heap, growing linear memory as needed.
// Nothing is freed: the program runs once and exits.
static void *alloc(size_t n) {
	static size_t next;
	if (next == 0) {
		next = (size_t)&__heap_base;
	}
	size_t start = (next + 7) & ~(size_t)7;
	size_t end = start + n;
	size_t have = __builtin_wasm_memory_size(0) * PAGE;
	if (end > have && __builtin_wasm_memory_grow(0, (end - have + PAGE - 1) / PAGE) == (size_t)-1) {
		return 0;
	}
	next = end;
	return (void *)start;
}

static size_t length(const char *s) {
	size_t n = 0;
	while (s[n]) {
		n++;
	}
	return n;
}

// write_all writes iovs to stdout, resuming after short writes.
static int write_all(ciovec *iovs, size_t n) {
	while (n > 0) {
		u32 w;
		if (fd_write(STDOUT, iovs, n, &w) != 0) {
			return -1;
		}
		while (n > 0 && w >= iovs->len) {
			w -= iovs->len;
			iovs++;
			n--;
		}
		if (n > 0) {
			iovs->buf += w;
			iovs->len -= w;
		}
	}
	return 0;
}

void _start(void) {
	u32 argc, size;
	if (args_sizes_get(&argc, &size) != 0) {
		proc_exit(2);
	}
	char **argv = alloc(argc * sizeof(char *));
	char *buf = alloc(size);
	// One iovec per argument after argv[0] and one separator after each.
	ciovec *iovs = alloc(2 * argc * sizeof(ciovec) + sizeof(ciovec));
	if (!argv || !buf || !iovs || args_get(argv, buf) != 0) {
		proc_exit(2);
	}
	size_t n = 0;
	for (u32 i = 1; i < argc; i++) {
		iovs[n++] = (ciovec){argv[i], length(argv[i])};
		iovs[n++] = (ciovec){i + 1 < argc ? " " : "\n", 1};
	}
	if (n == 0) {
		iovs[n++] = (ciovec){"\n", 1};
	}
	proc_exit(write_all(iovs, n) == 0 ? 0 : 1);
}
