package worker

import (
	"net"
	"net/url"
	"strconv"
)

// shardURL is the URL other peers reach this peer's shard service at, when
// no StorageAdvertise was given: the listener's own address, unless it
// listens on every interface (0.0.0.0 or ::), which no peer can dial. Then
// the host is the local IP this machine uses to reach the servers: the
// interface the servers see it on is the one other peers on that network
// can reach too. (Nomad and Consul pick their advertise address the same
// way.) With no server to route to, it falls back to the listener's address.
func shardURL(scheme string, ln net.Addr, servers []string) string {
	tcp, ok := ln.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return scheme + "://" + ln.String()
	}
	for _, s := range servers {
		if ip := routeTo(s); ip != nil {
			return scheme + "://" + net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
		}
	}
	return scheme + "://" + ln.String()
}

// routeTo is the local IP the kernel would use to send to server (a URL or
// host:port). A UDP "connection" sends nothing; it only picks the route.
func routeTo(server string) net.IP {
	host := server
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		host = u.Host
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "80")
	}
	conn, err := net.Dial("udp", host)
	if err != nil {
		return nil
	}
	defer conn.Close()
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
		return a.IP
	}
	return nil
}
