package devgrid

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/peergrid/peergrid/api"
)

// BenchmarkHandshakes is the rate at which one server takes new
// connections, as after a leader change when every worker reconnects: each
// operation is a fresh connection (keep-alive off) carrying one
// GET /v1/status. "tls" is the server as it runs (a full TLS 1.3 handshake
// on ECDSA P-256, then the request); "plain" is the same over plain HTTP,
// the baseline.
//
//	go test -run '^$' -bench Handshakes -benchtime 3s ./internal/devgrid/
func BenchmarkHandshakes(b *testing.B) {
	for _, plain := range []bool{false, true} {
		name := map[bool]string{false: "tls", true: "plain"}[plain]
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			g, err := Start(ctx, Config{DataDir: b.TempDir(), NoWorker: true, PlainHTTP: plain, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			tr := g.Client().HTTP.Transport.(*http.Transport).Clone()
			tr.DisableKeepAlives = true
			hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, g.Addr+"/v1/status", nil)
					req.Header.Set(api.TokenHeader, g.Token)
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
		})
	}
}
