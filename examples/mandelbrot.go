package examples

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"strconv"

	"github.com/peergrid/peergrid/tasks"
)

// mandelbrotArgs is the geometry of a mandelbrot job, from its task arguments
// INDEX WIDTH HEIGHT COLS ROWS MAXITER.
type mandelbrotArgs struct {
	index, width, height, cols, rows, maxIter int
}

const maxMandelbrotSide = 1 << 14

func parseMandelbrotArgs(i int, args []string) (mandelbrotArgs, error) {
	const want = "INDEX WIDTH HEIGHT COLS ROWS MAXITER, sizes in 1..16384, INDEX below COLS*ROWS"
	if len(args) != 6 {
		return mandelbrotArgs{}, badArgs(i, args, want)
	}
	var v [6]int
	for j, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n < 0 || n > maxMandelbrotSide || j > 0 && n == 0 {
			return mandelbrotArgs{}, badArgs(i, args, want)
		}
		v[j] = n
	}
	m := mandelbrotArgs{v[0], v[1], v[2], v[3], v[4], v[5]}
	if m.index >= m.cols*m.rows || m.cols > m.width || m.rows > m.height {
		return mandelbrotArgs{}, badArgs(i, args, want)
	}
	return m, nil
}

// tile is the pixel rectangle of tile m.index.
func (m mandelbrotArgs) tile() image.Rectangle {
	c, r := m.index%m.cols, m.index/m.cols
	return image.Rect(c*m.width/m.cols, r*m.height/m.rows, (c+1)*m.width/m.cols, (r+1)*m.height/m.rows)
}

// renderTile computes tile m.index natively, as the guest's PGM bytes.
// Products are wrapped in float64() so no compiler fuses them into an FMA:
// the guest does the same, so the bytes agree on every architecture.
func renderTile(m mandelbrotArgs) []byte {
	t := m.tile()
	out := fmt.Appendf(nil, "P5\n%d %d\n255\n", t.Dx(), t.Dy())
	step := 3.0 / float64(m.width)
	top := float64(-0.5 * float64(float64(m.height)*step))
	for py := t.Min.Y; py < t.Max.Y; py++ {
		ci := top + float64((float64(py)+0.5)*step)
		for px := t.Min.X; px < t.Max.X; px++ {
			cr := -2.1 + float64((float64(px)+0.5)*step)
			out = append(out, mandelbrotShade(cr, ci, m.maxIter))
		}
	}
	return out
}

func mandelbrotShade(cr, ci float64, maxIter int) byte {
	zr, zi := 0.0, 0.0
	n := 0
	for ; n < maxIter; n++ {
		rr, ii := float64(zr*zr), float64(zi*zi)
		if rr+ii > 4 {
			break
		}
		ri := float64(zr * zi)
		zr, zi = rr-ii+cr, float64(2*ri)+ci
	}
	if n == maxIter {
		return 0
	}
	return byte(float64(255 * math.Sqrt(math.Sqrt(float64(n)/float64(maxIter)))))
}

func verifyMandelbrot(spec *tasks.JobSpec, results [][]byte) error {
	for i := range spec.Tasks {
		m, err := parseMandelbrotArgs(i, spec.TaskArgs(i))
		if err != nil {
			return err
		}
		if m.index != i || m.cols*m.rows != spec.Tasks {
			return fmt.Errorf("task %d: args %q: want tile %d of a grid of %d tiles", i, spec.TaskArgs(i), i, spec.Tasks)
		}
		want := renderTile(m)
		if !bytes.Equal(results[i], want) {
			return wrongTaskAt(i, results[i], want)
		}
	}
	return nil
}

// StitchMandelbrot joins the mandelbrot example's tiles (results[i] is tile
// i, a binary PGM) into one grayscale image, with the geometry from spec's
// arguments. Encode it with image/png.
func StitchMandelbrot(spec *tasks.JobSpec, results [][]byte) (*image.Gray, error) {
	if spec.Tasks < 1 || len(results) != spec.Tasks {
		return nil, fmt.Errorf("mandelbrot: %d results for %d tiles", len(results), spec.Tasks)
	}
	first, err := parseMandelbrotArgs(0, spec.TaskArgs(0))
	if err != nil {
		return nil, fmt.Errorf("mandelbrot: %w", err)
	}
	img := image.NewGray(image.Rect(0, 0, first.width, first.height))
	for i, r := range results {
		m, err := parseMandelbrotArgs(i, spec.TaskArgs(i))
		if err != nil {
			return nil, fmt.Errorf("mandelbrot: %w", err)
		}
		t := m.tile()
		pix, err := pgmPixels(r, t.Dx(), t.Dy())
		if err != nil {
			return nil, fmt.Errorf("mandelbrot: tile %d: %w", i, err)
		}
		for y := range t.Dy() {
			copy(img.Pix[img.PixOffset(t.Min.X, t.Min.Y+y):], pix[y*t.Dx():(y+1)*t.Dx()])
		}
	}
	return img, nil
}

// pgmPixels returns the pixels of a binary PGM of the given size.
func pgmPixels(b []byte, w, h int) ([]byte, error) {
	header := fmt.Appendf(nil, "P5\n%d %d\n255\n", w, h)
	if !bytes.HasPrefix(b, header) || len(b) != len(header)+w*h {
		return nil, fmt.Errorf("not a %dx%d binary PGM (%d bytes, starting %q)", w, h, len(b), b[:min(len(b), 16)])
	}
	return b[len(header):], nil
}

func summarizeMandelbrot(spec *tasks.JobSpec, results [][]byte) (string, error) {
	img, err := StitchMandelbrot(spec, results)
	if err != nil {
		return "", err
	}
	inside := 0
	for _, p := range img.Pix {
		if p == 0 {
			inside++
		}
	}
	b := img.Bounds()
	return fmt.Sprintf("%dx%d image from %d tiles; %.1f%% of pixels in the set",
		b.Dx(), b.Dy(), len(results), 100*float64(inside)/float64(len(img.Pix))), nil
}
