// Command mandelbrot is a peergrid example task: it renders one tile of a
// WIDTH x HEIGHT grayscale image of the Mandelbrot set, cut into COLS x ROWS
// tiles numbered row by row, and writes the tile to stdout as a binary PGM
// ("P5\nW H\n255\n" and W*H bytes). Tile i covers columns
// [c*WIDTH/COLS, (c+1)*WIDTH/COLS) and rows [r*HEIGHT/ROWS, (r+1)*HEIGHT/ROWS)
// where c = i%COLS and r = i/COLS.
//
//	usage: mandelbrot INDEX WIDTH HEIGHT COLS ROWS MAXITER
//
// Every product is wrapped in an explicit float64 conversion: the Go spec
// lets a compiler fuse x*y+z into one FMA instruction (arm64, ppc64, s390x
// and riscv64 do), which rounds differently, and a conversion forbids that. So
// the bytes are the same on every worker, wasm or native.
package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 7 {
		usage("want 6 arguments")
	}
	var v [6]int
	for i, a := range os.Args[1:] {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 || n > 1<<16 {
			usage(fmt.Sprintf("argument %d: %q is not an integer in 0..65536", i+1, a))
		}
		v[i] = n
	}
	index, width, height, cols, rows, maxIter := v[0], v[1], v[2], v[3], v[4], v[5]
	if width == 0 || height == 0 || cols == 0 || rows == 0 || maxIter == 0 || index >= cols*rows {
		usage("sizes must be positive and INDEX below COLS*ROWS")
	}
	c, r := index%cols, index/cols
	x0, x1 := c*width/cols, (c+1)*width/cols
	y0, y1 := r*height/rows, (r+1)*height/rows

	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "P5\n%d %d\n255\n", x1-x0, y1-y0)
	for py := y0; py < y1; py++ {
		for px := x0; px < x1; px++ {
			cx, cy := point(px, py, width, height)
			w.WriteByte(shade(escapeTime(cx, cy, maxIter), maxIter))
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(os.Stderr, "mandelbrot: %v\n", err)
		os.Exit(1)
	}
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "mandelbrot: %s\nusage: mandelbrot INDEX WIDTH HEIGHT COLS ROWS MAXITER\n", msg)
	os.Exit(2)
}

// point maps pixel (px, py) to its centre in the complex plane: the image is
// 3.0 wide, from re = -2.1, and centred on im = 0.
func point(px, py, width, height int) (cx, cy float64) {
	step := 3.0 / float64(width)
	cx = -2.1 + float64((float64(px)+0.5)*step)
	cy = float64(-0.5*float64(float64(height)*step)) + float64((float64(py)+0.5)*step)
	return cx, cy
}

// escapeTime is the number of iterations of z = z*z + c before |z| > 2, or
// maxIter if it stays bounded.
func escapeTime(cx, cy float64, maxIter int) int {
	var x, y float64
	for i := 0; i < maxIter; i++ {
		x2, y2 := float64(x*x), float64(y*y)
		if x2+y2 > 4 {
			return i
		}
		xy := float64(x * y)
		y = xy + xy + cy
		x = x2 - y2 + cx
	}
	return maxIter
}

// shade is black inside the set and brighter the longer a point took to
// escape: 255 times the fourth root of it/maxIter. Sqrt is correctly rounded
// everywhere, unlike Log or Pow, so the bytes are the same on every worker.
func shade(it, maxIter int) byte {
	if it >= maxIter {
		return 0
	}
	return byte(float64(255 * math.Sqrt(math.Sqrt(float64(it)/float64(maxIter)))))
}
