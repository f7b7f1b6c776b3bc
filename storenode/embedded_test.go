package storenode_test

import (
	"strings"
	"testing"

	"github.com/storeloop/storeloop/storenode"
)

// Without auth, anyone who reaches the server may do anything: it listens
// on loopback only, unless told --insecure.
func TestEmbeddedListensOnLoopbackWithoutAuth(t *testing.T) {
	cases := []struct {
		listen   string
		insecure bool
		refused  bool
	}{
		{listen: "127.0.0.1:0"},
		{listen: "localhost:0"},
		{listen: "[::1]:0"},
		{listen: "0.0.0.0:0", refused: true},
		{listen: ":0", refused: true},
		{listen: "[::]:0", refused: true},
		{listen: "0.0.0.0:0", insecure: true},
	}
	for _, tc := range cases {
		t.Run(tc.listen, func(t *testing.T) {
			srv, _, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: t.TempDir(), Listen: tc.listen, Insecure: tc.insecure})
			if err == nil {
				srv.Shutdown()
				srv.WaitForShutdown()
			}
			switch {
			case tc.refused && (err == nil || !strings.Contains(err.Error(), "without --auth")):
				t.Fatalf("err = %v, want a refusal naming --auth", err)
			case !tc.refused && err != nil:
				t.Fatal(err)
			}
		})
	}
}
