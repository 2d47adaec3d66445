package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/peergrid/peergrid/api"
	"github.com/peergrid/peergrid/api/client"
	"github.com/peergrid/peergrid/auth"
	"github.com/peergrid/peergrid/storage"
)

// startStorageOnly finishes New for a peer that keeps shards but runs no
// tasks (Config.NoTasks, a server's storage peer): no executor pool, no
// engines. Run heartbeats, takes repair orders and sweeps orphan shards,
// and never leases.
func (w *Worker) startStorageOnly() (*Worker, error) {
	if w.cfg.StorageBind == "" {
		return nil, errors.New("worker: a peer that runs no tasks must be a storage peer (StorageBind)")
	}
	if err := w.serveShards(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// serveShards opens the shard store and serves it to other peers.
func (w *Worker) serveShards() error {
	quota := w.cfg.ShardQuota
	if v := w.cfg.Volunteer; v != nil && v.Prefs.MaxDisk > 0 { // prefs.toml may change it later (diskBudget.check)
		quota = v.Prefs.MaxDisk
	}
	store, err := storage.OpenShardStore(filepath.Join(w.cfg.DataDir, "shards"), storage.ShardStoreOptions{Logger: w.log, Admit: w.disk.admit,
		MaxBytes: quota})
	if err != nil {
		return fmt.Errorf("worker: shard store: %w", err)
	}
	ln, err := net.Listen("tcp", w.cfg.StorageBind)
	if err != nil {
		return fmt.Errorf("worker: storage listener on %s: %w", w.cfg.StorageBind, err)
	}
	w.shards = store
	scheme := "http"
	var ca *x509.Certificate
	if w.cfg.ShardTLS != nil { // served with the worker's certificate of the cluster CA
		ln = tls.NewListener(ln, shardServerTLS(w.cfg.ShardTLS))
		scheme = "https"
		ca = caOf(w.cfg.ShardTLS.Certificate)
	}
	w.shardsAddr = w.cfg.StorageAdvertise
	if w.shardsAddr == "" {
		w.shardsAddr = shardURL(scheme, ln.Addr(), w.client.Addrs())
	}
	w.shardHTTP = &http.Server{Handler: storage.NewShardHandler(store, newShardAuth(w.cfg.ID, ca, w.client)), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelDebug)} // failed handshakes: scanners, wrong CAs
	go w.shardHTTP.Serve(ln)
	w.log.Info("storage peer serving shards", "address", w.shardsAddr)
	return nil
}

// startRepair runs a repair order in the background, one at a time: fetch
// k shards of each damaged segment, rebuild the lost ones onto other live
// peers, and commit the new manifest.
func (r *run) startRepair(o api.RepairOrder) {
	r.repairs.Add(1)
	go func() {
		defer r.repairs.Done()
		r.w.repairMu.Lock()
		defer r.w.repairMu.Unlock()
		if err := r.w.repair(r.workCtx, o); err != nil {
			// A peer on its way out expects its repairs to fail (the grid
			// around it may be stopping too); the leader plans them again.
			log := r.w.log.Warn
			select {
			case <-r.draining:
				log = r.w.log.Info
			default:
			}
			log("repair failed", "blob", o.Blob, "err", err)
		}
	}()
}

// repair carries out one order. A partial repair is committed too: the
// shards it did rebuild are safe, and the leader plans the rest again.
func (w *Worker) repair(ctx context.Context, o api.RepairOrder) error {
	m, err := w.client.Manifest(ctx, o.Blob)
	if err != nil {
		return err
	}
	peers, err := w.client.ShardPeers(ctx)
	if err != nil {
		return err
	}
	fixed, rerr := storage.Repair(ctx, m, o.Lost, o.Targets, client.WithCapabilities(peers, o.Caps), storage.RepairOptions{})
	if fixed == nil {
		return rerr
	}
	if err := w.client.CommitRepair(ctx, fixed); err != nil {
		return errors.Join(rerr, err)
	}
	w.log.Info("repaired blob", "blob", o.Blob, "shards", len(o.Lost), "partial", rerr != nil)
	return rerr
}

// shardServerTLS serves with the peer's certificate and asks clients for
// theirs: none is fine (a user's CLI: its capability decides), but
// one that is presented must be a peer's or server's of this grid's CA (the
// last element of cert's chain); another grid's is refused at the
// handshake.
func shardServerTLS(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	ca, err := x509.ParseCertificate(cert.Certificate[len(cert.Certificate)-1])
	if err != nil || !ca.IsCA {
		return cfg
	}
	pin := auth.Pin{CA: ca}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		_, err := pin.VerifyClient(cs.PeerCertificates, auth.RoleWorker, auth.RoleServer)
		return err
	}
	return cfg
}
