package procs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NATSServerPkg is the nats-server main package storeloop depends on: the
// cluster tests run the very server version the embedded one is.
const NATSServerPkg = "github.com/nats-io/nats-server/v2"

// NATSServer is one nats-server process of a [NATSCluster]. Its ports are
// fixed at creation, so that a restart (Start again) comes back on the
// same addresses and rejoins the cluster.
type NATSServer struct {
	*Proc
	Name    string // server_name, as stream infos name the leader
	URL     string // client URL
	Monitor string // host:port of the monitoring endpoints
	spec    Spec
}

// NATSCluster is n nats-server processes forming one JetStream cluster
// named "storeloop", each with its own store directory under dir.
type NATSCluster struct {
	Servers []*NATSServer
}

// StartNATSCluster builds nats-server, starts n servers as a JetStream
// cluster (fsync always, as deploy/nats/cluster-*.conf) and waits until
// each one's /healthz answers 200: JetStream is up and current.
func StartNATSCluster(t testing.TB, dir string, n int) *NATSCluster {
	t.Helper()
	bin := Build(t, NATSServerPkg)
	type ports struct{ client, cluster, monitor string }
	addrs := make([]ports, n)
	for i := range addrs {
		addrs[i] = ports{FreeAddr(t), FreeAddr(t), FreeAddr(t)}
	}
	c := &NATSCluster{}
	for i, a := range addrs {
		var routes []string
		for j, b := range addrs {
			if j != i {
				routes = append(routes, "nats://"+b.cluster)
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		// The log goes to a file: a cluster's route chatter would bury
		// the daemons' output in a failed test's log.
		conf := fmt.Sprintf(`server_name: %s
log_file: %q
listen: %q
http: %q
max_payload: 8MB
jetstream { store_dir: %q, sync_interval: always }
cluster { name: storeloop, listen: %q, routes: [%s] }
`, name, filepath.Join(dir, name+".log"), a.client, a.monitor, filepath.Join(dir, name), a.cluster, strings.Join(routes, ", "))
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatalf("procs: %v", err)
		}
		s := &NATSServer{Name: name, URL: "nats://" + a.client, Monitor: a.monitor,
			spec: Spec{Name: "nats-server " + name, Bin: bin, Args: []string{"-c", path}}}
		c.Servers = append(c.Servers, s)
	}
	c.Restart(t, c.Servers...)
	return c
}

// URLs is every server's client URL, comma-separated, as nats.Connect and
// the daemons' --nats take them.
func (c *NATSCluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL
	}
	return strings.Join(urls, ",")
}

// Server returns the server named name, nil if none is.
func (c *NATSCluster) Server(name string) *NATSServer {
	for _, s := range c.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Restart starts servers (stopped, killed or never started) on their
// addresses and waits until each is healthy: JetStream up and current,
// which a cluster's server is only once a quorum of its peers runs.
func (c *NATSCluster) Restart(t testing.TB, servers ...*NATSServer) {
	t.Helper()
	c.Launch(t, servers...)
	for _, s := range servers {
		s.WaitHTTP(t, "http://"+s.Monitor+"/healthz", StartTimeout)
	}
}

// Launch starts servers on their addresses without waiting for them to be
// healthy: a server whose peers are down has no quorum and never is.
func (c *NATSCluster) Launch(t testing.TB, servers ...*NATSServer) {
	t.Helper()
	for _, s := range servers {
		s.Proc = Start(t, s.spec)
	}
}
