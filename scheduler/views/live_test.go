package views

import (
	"bytes"
	"fmt"
	"image"
	"testing"
	"time"

	"github.com/peergrid/peergrid/tasks"
)

func TestSamples_KeepTheLastHourOldestFirst(t *testing.T) {
	var s samples
	t0 := time.Unix(1_700_000_000, 0)
	for i := range samplesKept + 5 {
		s.add(sample{At: t0.Add(time.Duration(i) * SampleEvery), Results: i})
	}
	all := s.all()
	if len(all) != samplesKept {
		t.Fatalf("%d samples kept, want %d (an hour at %v)", len(all), samplesKept, SampleEvery)
	}
	for i, x := range all {
		if x.Results != i+5 {
			t.Fatalf("sample %d is #%d, want #%d: the oldest five dropped, the rest in order", i, x.Results, i+5)
		}
	}
}

func TestSeries_RateIsResultsPerSecondNeverNegative(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	pts := series([]sample{
		{At: t0, Results: 100, Queued: 7},
		{At: t0.Add(10 * time.Second), Results: 150, Queued: 3, Running: 2},
		{At: t0.Add(20 * time.Second), Results: 120}, // a peer forgotten took its counts along
		{At: t0.Add(25 * time.Second), Results: 130},
	})
	want := []float64{0, 5, 0, 2}
	for i, p := range pts {
		if p.Rate != want[i] {
			t.Errorf("point %d: rate %v, want %v", i, p.Rate, want[i])
		}
	}
	if pts[1].Queued != 3 || pts[1].Running != 2 || pts[0].T != t0.UnixMilli() {
		t.Errorf("point 1 = %+v, point 0 at %d", pts[1], pts[0].T)
	}
}

func pgm(w, h int, shade byte) []byte {
	return append(fmt.Appendf(nil, "P5\n# a comment\n%d %d\n255\n", w, h), bytes.Repeat([]byte{shade}, w*h)...)
}

func TestDecodeTile(t *testing.T) {
	img, err := decodeTile(pgm(3, 2, 77), nil)
	if err != nil || img.Bounds() != image.Rect(0, 0, 3, 2) {
		t.Fatalf("PGM 3x2: %v %v", img, err)
	}
	if r, _, _, _ := img.At(2, 1).RGBA(); r>>8 != 77 {
		t.Errorf("pixel (2,1) = %d, want 77", r>>8)
	}
	ppm := append([]byte("P6\n1 1\n255\n"), 10, 20, 30)
	img, err = decodeTile(ppm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b, _ := img.At(0, 0).RGBA(); r>>8 != 10 || g>>8 != 20 || b>>8 != 30 {
		t.Errorf("PPM pixel = %d,%d,%d, want 10,20,30", r>>8, g>>8, b>>8)
	}
	for name, bad := range map[string][]byte{
		"text":      []byte("hello world\n"),
		"ascii PGM": []byte("P2\n1 1\n255\n7\n"),
		"short":     []byte("P5\n4 4\n255\nab"),
		"16-bit":    append([]byte("P5\n1 1\n65535\n"), 0, 1),
		"huge":      []byte("P5\n100000 100000\n255\n"),
	} {
		if _, err := decodeTile(bad, nil); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
}

func TestStitch_LaysTilesOnTheGridGreyForMissingRedForBad(t *testing.T) {
	tile := func(w, h int, shade byte) image.Image {
		img, err := decodeTile(pgm(w, h, shade), nil)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	// 3x2 tiles of uneven sizes (as a 10x5 image cut in 3 columns gives):
	// tile 4 not done, tile 5 not an image.
	tiles := []image.Image{tile(3, 2, 10), tile(4, 2, 20), tile(3, 2, 30), tile(3, 3, 40), nil, nil}
	out, err := stitch(&tasks.ImageTiles{Cols: 3, Rows: 2}, tiles, []bool{false, false, false, false, false, true})
	if err != nil {
		t.Fatal(err)
	}
	if out.Bounds() != image.Rect(0, 0, 10, 5) {
		t.Fatalf("stitched %v, want 10x5", out.Bounds())
	}
	for _, c := range []struct {
		x, y    int
		r, g, b uint32
	}{
		{0, 0, 10, 10, 10}, {3, 1, 20, 20, 20}, {9, 0, 30, 30, 30}, {0, 4, 40, 40, 40},
		{4, 3, 0xd5, 0xd5, 0xd5}, // missing: grey
		{8, 4, 0xc8, 0x45, 0x3b}, // bad: red
	} {
		r, g, b, _ := out.At(c.x, c.y).RGBA()
		if r>>8 != c.r || g>>8 != c.g || b>>8 != c.b {
			t.Errorf("pixel (%d,%d) = %d,%d,%d, want %d,%d,%d", c.x, c.y, r>>8, g>>8, b>>8, c.r, c.g, c.b)
		}
	}
	if _, err := stitch(&tasks.ImageTiles{Cols: 2, Rows: 1}, []image.Image{tile(4000, 4000, 1), tile(4000, 4000, 1)}, nil); err == nil {
		t.Error("stitched 8000x4000, want the pixel bound's error")
	}
}
