package views

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/scheduler/ledger"
	"github.com/peergrid/peergrid/storage"
	"github.com/peergrid/peergrid/tasks"
)

// The stitched image of a job whose spec says it makes one (its image
// key): GET /ui/jobs/{id}/image.png reads every done task's stdout as a
// binary PGM (P5) or PPM (P6) tile and lays the tiles out on the job's
// grid. A tile not done yet is grey; one that is not a PGM/PPM is red.

const (
	maxImagePixels = 16 << 20         // of the stitched image
	maxTileBytes   = 64 << 20         // of one tile's stdout
	imageFetchWait = 10 * time.Second // for every coded tile together
)

var (
	colourMissing = color.RGBA{0xd5, 0xd5, 0xd5, 0xff}
	colourBad     = color.RGBA{0xc8, 0x45, 0x3b, 0xff}
)

func (d *Dashboard) uiJobImage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v := viewerOf(r)
	var tiles *tasks.ImageTiles
	var results []api.TaskResult
	manifests := map[string]*storage.Manifest{}
	var peers []api.StoragePeer
	d.src.Store().FSM().View(func(l *ledger.Ledger) {
		spec, ok := l.JobSpec(id)
		if !ok || spec.Image == nil || !seesJob(l, v, id) {
			return
		}
		tiles = spec.Image
		results = l.TaskResults(id, 0, min(spec.Tasks, tasks.MaxImageTiles))
		for _, t := range results {
			if t.StdoutBlob != "" {
				manifests[t.StdoutBlob] = l.Manifest(t.StdoutBlob) // never changed in place
			}
		}
		if len(manifests) > 0 {
			peers = l.StoragePeers(true)
		}
	})
	if tiles == nil {
		http.Error(w, "dashboard: no job "+id+" that makes an image, or not one you may see", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), imageFetchWait)
	defer cancel()
	decoded := make([]image.Image, len(results))
	failed := make([]bool, len(results))
	for i, t := range results {
		if t.State != tasks.TaskDone {
			continue
		}
		img, err := decodeTile(d.tileBytes(ctx, t, manifests, peers))
		decoded[i], failed[i] = img, err != nil
	}
	out, err := stitch(tiles, decoded, failed)
	if err != nil {
		http.Error(w, "dashboard: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	_ = png.Encode(w, out)
}

// tileBytes is a done task's stdout: inline in the ledger, or read from
// the storage peers.
func (d *Dashboard) tileBytes(ctx context.Context, t api.TaskResult, manifests map[string]*storage.Manifest, peers []api.StoragePeer) ([]byte, error) {
	if t.StdoutBlob == "" {
		return t.Stdout, nil
	}
	m := manifests[t.StdoutBlob]
	if m == nil {
		return nil, fmt.Errorf("tile %d: no manifest for blob %s", t.Index, t.StdoutBlob)
	}
	if m.Size > maxTileBytes {
		return nil, fmt.Errorf("tile %d: %d bytes, more than %d", t.Index, m.Size, maxTileBytes)
	}
	clients := make(map[string]storage.ShardPeer, len(peers))
	for _, sp := range peers {
		clients[sp.ID] = d.src.ShardPeer(sp.Address)
	}
	var buf bytes.Buffer
	if _, err := storage.Get(ctx, m, &buf, clients, storage.GetOptions{}); err != nil {
		return nil, fmt.Errorf("tile %d: %w", t.Index, err)
	}
	return buf.Bytes(), nil
}

var errNotPNM = errors.New("not a binary PGM or PPM with maxval 255")

// decodeTile reads a binary PGM (P5) or PPM (P6) with 8-bit samples.
func decodeTile(data []byte, err error) (image.Image, error) {
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(bytes.NewReader(data))
	var magic string
	var w, h, maxval int
	for i, dst := range []any{&magic, &w, &h, &maxval} {
		tok, err := pnmToken(br)
		if err != nil {
			return nil, errNotPNM
		}
		if i == 0 {
			*dst.(*string) = tok
			continue
		}
		if *dst.(*int), err = strconv.Atoi(tok); err != nil {
			return nil, errNotPNM
		}
	}
	channels := map[string]int{"P5": 1, "P6": 3}[magic]
	if channels == 0 || maxval != 255 || w < 1 || h < 1 || w*h > maxImagePixels {
		return nil, errNotPNM
	}
	pix := make([]byte, w*h*channels)
	if _, err := io.ReadFull(br, pix); err != nil {
		return nil, errNotPNM
	}
	if channels == 1 {
		return &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range w * h {
		copy(img.Pix[4*i:], pix[3*i:3*i+3])
		img.Pix[4*i+3] = 0xff
	}
	return img, nil
}

// pnmToken is the next header field: skips whitespace and # comments, and
// the single whitespace byte after the field.
func pnmToken(br *bufio.Reader) (string, error) {
	var tok []byte
	for {
		c, err := br.ReadByte()
		switch {
		case err != nil:
			return "", err
		case c == '#' && len(tok) == 0:
			if _, err := br.ReadString('\n'); err != nil {
				return "", err
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			if tok = append(tok, c); len(tok) > 16 {
				return "", errNotPNM
			}
		}
	}
}

// stitch lays tile i at column i%Cols, row i/Cols. A column is as wide as
// its widest known tile and a row as tall as its tallest, so a grid whose
// sizes do not divide evenly still lines up; a tile not there yet (nil)
// is grey, a bad one (failed) red.
func stitch(g *tasks.ImageTiles, tiles []image.Image, failed []bool) (image.Image, error) {
	colW, rowH := make([]int, g.Cols), make([]int, g.Rows)
	for i, t := range tiles {
		if t != nil {
			colW[i%g.Cols] = max(colW[i%g.Cols], t.Bounds().Dx())
			rowH[i/g.Cols] = max(rowH[i/g.Cols], t.Bounds().Dy())
		}
	}
	fill(colW, 32)
	fill(rowH, 32)
	xs, ys := offsets(colW), offsets(rowH)
	W, H := xs[g.Cols], ys[g.Rows]
	if W*H > maxImagePixels {
		return nil, fmt.Errorf("the stitched image would be %dx%d, more than %d pixels", W, H, maxImagePixels)
	}
	out := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := range g.Cols * g.Rows {
		c, r := i%g.Cols, i/g.Cols
		cell := image.Rect(xs[c], ys[r], xs[c]+colW[c], ys[r]+rowH[r])
		switch {
		case i < len(tiles) && tiles[i] != nil:
			draw.Draw(out, cell, tiles[i], image.Point{}, draw.Src)
		case i < len(failed) && failed[i]:
			draw.Draw(out, cell, image.NewUniform(colourBad), image.Point{}, draw.Src)
		default:
			draw.Draw(out, cell, image.NewUniform(colourMissing), image.Point{}, draw.Src)
		}
	}
	return out, nil
}

// fill gives the sizes still unknown (0) the known ones' largest, or def.
func fill(sizes []int, def int) {
	known := 0
	for _, s := range sizes {
		known = max(known, s)
	}
	if known == 0 {
		known = def
	}
	for i := range sizes {
		if sizes[i] == 0 {
			sizes[i] = known
		}
	}
}

func offsets(sizes []int) []int {
	out := make([]int, len(sizes)+1)
	for i, s := range sizes {
		out[i+1] = out[i] + s
	}
	return out
}
