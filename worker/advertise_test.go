package worker

import (
	"net"
	"strconv"
	"testing"
)

// TestShardURL_EveryInterfaceAdvertisesTheRouteToTheServers: a shard
// service bound to 0.0.0.0 advertises the local IP that routes to the
// servers (here loopback), never the unspecified address no peer can dial;
// one bound to a specific address advertises that.
func TestShardURL_EveryInterfaceAdvertisesTheRouteToTheServers(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if got, want := shardURL("http", ln.Addr(), []string{"http://127.0.0.1:7070"}), "http://127.0.0.1:"+port; got != want {
		t.Fatalf("bound to every interface, servers on loopback: %s, want %s", got, want)
	}
	if got, want := shardURL("http", ln.Addr(), []string{"127.0.0.1:7070"}), "http://127.0.0.1:"+port; got != want {
		t.Fatalf("server given as host:port: %s, want %s", got, want)
	}
	specific := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 9000}
	if got := shardURL("http", specific, []string{"http://127.0.0.1:7070"}); got != "http://10.1.2.3:9000" {
		t.Fatalf("bound to one address: %s", got)
	}
}
