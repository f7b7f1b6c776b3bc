package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/client"
	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/procs"
	"github.com/storeloop/storeloop/storenode"
)

// TestMain removes the binaries procs built.
func TestMain(m *testing.M) {
	code := m.Run()
	procs.Cleanup()
	os.Exit(code)
}

// doc is one YAML document of a file under deploy/.
type doc struct {
	file string
	m    map[string]any
}

// yamlDocs parses every document of every YAML file under deploy/.
func yamlDocs(t *testing.T) []doc {
	t.Helper()
	var docs []doc
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		dec := yaml.NewDecoder(f)
		for {
			var m map[string]any
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			docs = append(docs, doc{path, m})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// get walks a path of map keys and list indexes through a parsed document.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func list(v any) []any { l, _ := v.([]any); return l }
func str(v any) string { s, _ := v.(string); return s }
func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// k8sDocs are the Kubernetes objects, by kind.
func k8sDocs(t *testing.T) map[string][]doc {
	t.Helper()
	byKind := map[string][]doc{}
	for _, d := range yamlDocs(t) {
		if strings.HasPrefix(d.file, "k8s"+string(filepath.Separator)) {
			byKind[str(d.m["kind"])] = append(byKind[str(d.m["kind"])], d)
		}
	}
	return byKind
}

// container is one container of a workload, or a compose service.
type container struct {
	where string
	image string
	argv  []string // command then args
	spec  map[string]any
	pod   map[string]any // the pod template (k8s)
}

func containers(t *testing.T) []container {
	t.Helper()
	var out []container
	for kind, docs := range k8sDocs(t) {
		if !slices.Contains([]string{"StatefulSet", "Deployment", "Job"}, kind) {
			continue
		}
		for _, d := range docs {
			pod, _ := get(d.m, "spec", "template").(map[string]any)
			for _, c := range list(get(pod, "spec", "containers")) {
				cm := c.(map[string]any)
				out = append(out, container{
					where: fmt.Sprintf("%s %s/%s", d.file, kind, str(get(cm, "name"))),
					image: str(cm["image"]), argv: append(strs(cm["command"]), strs(cm["args"])...),
					spec: cm, pod: pod,
				})
			}
		}
	}
	compose := composeFile(t)
	for name, s := range compose["services"].(map[string]any) {
		sm := s.(map[string]any)
		out = append(out, container{
			where: "compose.yaml " + name, image: str(sm["image"]),
			argv: append(strs(sm["entrypoint"]), strs(sm["command"])...), spec: sm,
		})
	}
	return out
}

func composeFile(t *testing.T) map[string]any {
	t.Helper()
	for _, d := range yamlDocs(t) {
		if d.file == "compose.yaml" {
			return d.m
		}
	}
	t.Fatal("no compose.yaml")
	return nil
}

// The manifests hold every kind the deployment needs, each object named.
func TestManifestKinds(t *testing.T) {
	byKind := k8sDocs(t)
	for _, kind := range []string{"ConfigMap", "Service", "StatefulSet", "Deployment", "Job"} {
		if len(byKind[kind]) == 0 {
			t.Errorf("no %s under k8s/", kind)
		}
	}
	names := map[string]string{}
	for kind, docs := range byKind {
		for _, d := range docs {
			name := str(get(d.m, "metadata", "name"))
			if str(d.m["apiVersion"]) == "" || name == "" {
				t.Errorf("%s: %s without apiVersion or metadata.name", d.file, kind)
			}
			if prev, dup := names[kind+"/"+name]; dup {
				t.Errorf("%s/%s in %s and %s", kind, name, prev, d.file)
			}
			names[kind+"/"+name] = d.file
		}
	}
	// A leader and a standby: the lease (on by default with --nats) keeps
	// a single writer.
	for _, d := range byKind["StatefulSet"] {
		if get(d.m, "metadata", "name") == "storenode" && get(d.m, "spec", "replicas") != 2 {
			t.Errorf("storenode StatefulSet replicas = %v, want 2", get(d.m, "spec", "replicas"))
		}
	}
	if len(composeFile(t)["services"].(map[string]any)) == 0 {
		t.Error("compose.yaml has no services")
	}
}

// Every probe of a storeloop container asks /healthz or /readyz on a port
// the container declares; every daemon has both a liveness and a
// readiness probe; compose health checks use the same paths.
func TestProbes(t *testing.T) {
	endpoints := []string{"/healthz", "/readyz"}
	for _, c := range containers(t) {
		if !strings.HasPrefix(c.image, "storeloop:") || c.argv[0] == "storeloop" {
			continue
		}
		if c.pod == nil { // compose
			test := strings.Join(strs(get(c.spec, "healthcheck", "test")), " ")
			if test != "" && !slices.ContainsFunc(endpoints, func(p string) bool { return strings.HasSuffix(test, p) }) {
				t.Errorf("%s: health check %q hits neither /healthz nor /readyz", c.where, test)
			}
			continue
		}
		ports := map[string]bool{}
		for _, p := range list(c.spec["ports"]) {
			ports[str(get(p, "name"))] = true
		}
		for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
			h := get(c.spec, probe, "httpGet")
			if h == nil {
				if probe != "startupProbe" {
					t.Errorf("%s: no %s", c.where, probe)
				}
				continue
			}
			if path := str(get(h, "path")); !slices.Contains(endpoints, path) {
				t.Errorf("%s: %s path %q, want one of %v", c.where, probe, path, endpoints)
			}
			if port := fmt.Sprint(get(h, "port")); !ports[port] {
				t.Errorf("%s: %s port %q is not a declared port", c.where, probe, port)
			}
		}
		if str(get(c.spec, "readinessProbe", "httpGet", "path")) != "/readyz" {
			t.Errorf("%s: readiness probe should ask /readyz", c.where)
		}
	}
}

// hostRE finds the hosts of the URLs in arguments and environment values.
var hostRE = regexp.MustCompile(`(?:nats|http)://([a-z0-9-]+):(\d+)`)

// Every Service selects some pod, and every in-cluster URL a container is
// given (nats://nats:4222, http://jaeger:4318) names a Service with that
// port.
func TestServicesResolve(t *testing.T) {
	byKind, all := k8sDocs(t), containers(t)
	servicePorts := map[string]bool{}
	for _, svc := range byKind["Service"] {
		name := str(get(svc.m, "metadata", "name"))
		for _, p := range list(get(svc.m, "spec", "ports")) {
			servicePorts[fmt.Sprintf("%s:%v", name, get(p, "port"))] = true
		}
		sel, _ := get(svc.m, "spec", "selector").(map[string]any)
		matched := false
		for _, c := range all {
			labels, _ := get(c.pod, "metadata", "labels").(map[string]any)
			matched = matched || (c.pod != nil && len(sel) > 0 && subset(sel, labels))
		}
		if !matched {
			t.Errorf("Service %s selects no pod (selector %v)", name, sel)
		}
	}
	for _, c := range all {
		if c.pod == nil {
			continue
		}
		text := strings.Join(c.argv, " ")
		for _, e := range list(c.spec["env"]) {
			text += " " + str(get(e, "value"))
		}
		for _, m := range hostRE.FindAllStringSubmatch(text, -1) {
			if !servicePorts[m[1]+":"+m[2]] {
				t.Errorf("%s: %s is no Service port", c.where, m[0])
			}
		}
	}
}

func subset(sel, labels map[string]any) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The example ConfigMaps are the example's files, verbatim.
func TestExampleConfigMaps(t *testing.T) {
	want := map[string]string{
		"storeloop-rules/rules.yaml":     "../examples/ecommerce/rules.yaml",
		"storeloop-buckets/buckets.yaml": "../examples/ecommerce/buckets.yaml",
	}
	for _, cm := range k8sDocs(t)["ConfigMap"] {
		for key, v := range get(cm.m, "data").(map[string]any) {
			file, ok := want[str(get(cm.m, "metadata", "name"))+"/"+key]
			if !ok {
				continue
			}
			delete(want, str(get(cm.m, "metadata", "name"))+"/"+key)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if str(v) != string(b) {
				t.Errorf("ConfigMap %s differs from %s", key, file)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("missing ConfigMaps: %v", want)
	}
}

// natsConfigs are deploy/nats/*.conf and the NATS configuration of the
// Kubernetes manifests, parsed by nats-server itself.
// The *-auth.conf files include auth/server.conf: they are read from a
// copy of nats/ in which `storeloop auth init` wrote authDir(t).
func natsConfigs(t *testing.T) map[string]*server.Options {
	t.Helper()
	files, err := filepath.Glob("nats/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("nats/*.conf: %v %v", files, err)
	}
	dir := filepath.Dir(authDir(t))
	for i, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(files[i], body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, cm := range k8sDocs(t)["ConfigMap"] {
		if conf := str(get(cm.m, "data", "nats.conf")); conf != "" {
			f := filepath.Join(t.TempDir(), "k8s-nats.conf")
			if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("POD_NAME", "nats-0") // set by the StatefulSet
			files = append(files, f)
		}
	}
	out := map[string]*server.Options{}
	for _, f := range files {
		opts, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = opts
	}
	return out
}

// authDirs holds each test's auth directory.
var authDirs = map[testing.TB]string{}

// authDir returns the test's auth directory, <tmp>/auth, written by
// `storeloop auth init` (auth.Init) on first use.
func authDir(t *testing.T) string {
	t.Helper()
	if d, ok := authDirs[t]; ok {
		return d
	}
	d := filepath.Join(t.TempDir(), "auth")
	if err := auth.Init(d); err != nil {
		t.Fatal(err)
	}
	authDirs[t] = d
	t.Cleanup(func() { delete(authDirs, t) })
	return d
}

// Every NATS configuration has what storenode needs: JetStream, an fsync
// per write, and room for the stream's 4 MiB messages with their headers;
// the -auth ones also trust the operator of auth init. The cluster files
// form one cluster of three.
func TestNATSConfigs(t *testing.T) {
	confs := natsConfigs(t)
	for _, name := range []string{"nats.conf", "cluster-1.conf", "cluster-2.conf", "cluster-3.conf", "k8s-nats.conf",
		"nats-auth.conf", "cluster-1-auth.conf", "cluster-2-auth.conf", "cluster-3-auth.conf"} {
		opts := confs[name]
		if opts == nil {
			t.Errorf("no %s", name)
			continue
		}
		if !opts.JetStream || !opts.SyncAlways || opts.MaxPayload <= 4<<20 {
			t.Errorf("%s: jetstream %v, sync always %v, max_payload %d; want true, true, > 4 MiB",
				name, opts.JetStream, opts.SyncAlways, opts.MaxPayload)
		}
		if secured := strings.HasSuffix(name, "-auth.conf"); secured != (len(opts.TrustedOperators) == 1 && opts.SystemAccount != "") {
			t.Errorf("%s: trusted operators %d, system account %q", name, len(opts.TrustedOperators), opts.SystemAccount)
		}
	}
	clusterPorts := map[int]string{}
	for i := 1; i <= 3; i++ {
		opts := confs[fmt.Sprintf("cluster-%d.conf", i)]
		clusterPorts[opts.Cluster.Port] = opts.ServerName
	}
	for i := 1; i <= 3; i++ {
		opts := confs[fmt.Sprintf("cluster-%d.conf", i)]
		var peers []string
		for _, r := range opts.Routes {
			peers = append(peers, clusterPorts[atoi(t, r.Port())])
		}
		slices.Sort(peers)
		var want []string
		for p, n := range clusterPorts {
			if p != opts.Cluster.Port {
				want = append(want, n)
			}
		}
		slices.Sort(want)
		if opts.Cluster.Name != "storeloop" || len(clusterPorts) != 3 || !slices.Equal(peers, want) {
			t.Errorf("cluster-%d.conf: cluster %q routes to %v, want storeloop routing to %v", i, opts.Cluster.Name, peers, want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// startServer runs opts in-process on loopback with its store in a
// temporary directory.
func startServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.HTTPPort, opts.StoreDir = "127.0.0.1", 0, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return s
}

// writeAndRead runs a store node with opts on url, defines a bucket,
// inserts and reads back a record, and returns the stream's configuration.
// With an auth directory, the node connects as the store role and a
// client's forged event is refused.
func writeAndRead(t *testing.T, url, authDir string, opts ...storenode.Option) jetstream.StreamConfig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cc auth.ConnConfig
	if authDir != "" {
		cc.Creds = filepath.Join(authDir, auth.RoleStore.CredsFile())
		refusesForgery(t, url, filepath.Join(authDir, auth.RoleClient.CredsFile()))
	}
	natsOpts, err := cc.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	node, err := storenode.Start(ctx, nc, append(opts, storenode.WithLogger(slog.New(slog.DiscardHandler)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Stop(ctx)
	if authDir != "" {
		cc.Creds = filepath.Join(authDir, auth.RoleClient.CredsFile())
	}
	natsOpts, err = cc.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Connect(url, client.WithNATSOptions(natsOpts...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Define(ctx, events.BucketDef{Bucket: "notes", Key: "id", Schema: map[string]events.FieldDef{"id": {Type: "string"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Bucket("notes").Insert(ctx, events.Record{"id": "a"}); err != nil {
		t.Fatal(err)
	}
	rec, err := cl.Bucket("notes").Get(ctx, "a")
	if err != nil || rec["id"] != "a" {
		t.Fatalf("get a = %v, %v", rec, err)
	}
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

// refusesForgery checks that the client credentials cannot publish an event.
func refusesForgery(t *testing.T, url, creds string) {
	t.Helper()
	natsOpts, err := auth.ConnConfig{Creds: creds}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan error, 1)
	nc, err := nats.Connect(url, append(natsOpts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("bucket.notes.inserted", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refused:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("forged event: %v, want a permissions violation", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("forged event not refused")
	}
}

// A store node works on a server run from nats/nats.conf, and from
// nats/nats-auth.conf as the store role.
func TestStorenodeOnNATSConf(t *testing.T) {
	for _, name := range []string{"nats.conf", "nats-auth.conf"} {
		t.Run(name, func(t *testing.T) {
			opts := natsConfigs(t)[name]
			s := startServer(t, opts)
			dir := ""
			if len(opts.TrustedOperators) > 0 {
				dir = authDir(t)
			}
			if cfg := writeAndRead(t, s.ClientURL(), dir); int64(cfg.MaxMsgSize) >= int64(opts.MaxPayload) {
				t.Errorf("stream max_msg_size %d does not fit max_payload %d", cfg.MaxMsgSize, opts.MaxPayload)
			}
		})
	}
}

// A store node with --replicas 3 works on the three servers of
// nats/cluster-*.conf (run in-process, on free ports in place of theirs),
// and of nats/cluster-*-auth.conf as the store role.
func TestStorenodeOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a three-server JetStream cluster")
	}
	for _, suffix := range []string{"", "-auth"} {
		t.Run("cluster-N"+suffix, func(t *testing.T) { storenodeOnCluster(t, suffix) })
	}
}

func storenodeOnCluster(t *testing.T, suffix string) {
	confs := natsConfigs(t)
	cluster := func(i int) *server.Options { return confs[fmt.Sprintf("cluster-%d%s.conf", i, suffix)] }
	dir := ""
	if suffix != "" {
		dir = authDir(t)
	}
	newPort := map[string]string{} // cluster port in the file → free port
	for i := 1; i <= 3; i++ {
		_, port, _ := strings.Cut(procs.FreeAddr(t), ":")
		newPort[fmt.Sprint(cluster(i).Cluster.Port)] = port
	}
	var servers []*server.Server
	var urls []string
	for i := 1; i <= 3; i++ {
		opts := cluster(i)
		opts.Port = -1
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", atoi(t, newPort[fmt.Sprint(opts.Cluster.Port)])
		for _, r := range opts.Routes {
			*r = url.URL{Scheme: r.Scheme, Host: "127.0.0.1:" + newPort[r.Port()]}
		}
		s := startServer(t, opts)
		servers = append(servers, s)
		urls = append(urls, s.ClientURL())
	}
	// Wait for the cluster: a meta leader, every server current.
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !slices.ContainsFunc(servers, (*server.Server).JetStreamIsLeader) ||
		slices.ContainsFunc(servers, func(s *server.Server) bool { return !s.JetStreamIsCurrent() }) {
		select {
		case <-deadline:
			t.Fatal("no JetStream cluster in 30s")
		case <-tick.C:
		}
	}
	if cfg := writeAndRead(t, strings.Join(urls, ","), dir, storenode.WithReplicas(3)); cfg.Replicas != 3 {
		t.Errorf("stream replicas = %d, want 3", cfg.Replicas)
	}
}

// flagRE finds the flag names in an argument list.
var flagRE = regexp.MustCompile(`^--?([a-z][a-z0-9-]*)`)

// wordRE matches a subcommand word of the storeloop CLI.
var wordRE = regexp.MustCompile(`^[a-z]+$`)

// Every flag the manifests, compose file and launcher pass to a storeloop
// program is one the program accepts: it is listed by its -h.
func TestFlagsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemons")
	}
	type call struct {
		where, prog string
		args        []string
	}
	var calls []call
	for _, c := range containers(t) {
		if strings.HasPrefix(c.image, "storeloop:") && len(c.argv) > 0 {
			calls = append(calls, call{c.where, c.argv[0], c.argv[1:]})
		}
	}
	// launch.sh: lines running a built program.
	script, err := os.ReadFile("launch.sh")
	if err != nil {
		t.Fatal(err)
	}
	launchRE := regexp.MustCompile(`(?m)(?:spawn \S+ |"\$bin/)(storenode|rulenode|storeloop)"? (.*)$`)
	for _, m := range launchRE.FindAllStringSubmatch(string(script), -1) {
		calls = append(calls, call{"launch.sh", m[1], strings.Fields(m[2])})
	}
	if len(calls) < 8 {
		t.Fatalf("found only %d invocations: %v", len(calls), calls)
	}
	for _, c := range calls {
		// The CLI's help depends on the subcommand: its words are the
		// arguments that are plain lowercase words.
		var sub []string
		for _, a := range c.args {
			if c.prog == "storeloop" && wordRE.MatchString(a) {
				sub = append(sub, a)
			}
		}
		out, _ := exec.Command(procs.Build(t, c.prog), append(sub, "-h")...).CombinedOutput()
		for _, a := range c.args {
			m := flagRE.FindStringSubmatch(a)
			if m == nil {
				continue
			}
			if !regexp.MustCompile(`(?m)^\s+(-\w, )?--?` + m[1] + `\b`).Match(out) {
				t.Errorf("%s: %s has no flag --%s:\n%s", c.where, c.prog, m[1], out)
			}
		}
	}
}
