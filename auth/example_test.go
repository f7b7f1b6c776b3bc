package auth_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/storeloop/storeloop/auth"
)

// Write the credentials of every role, then connect as a client: the
// connection options carry the credentials and the client role's inbox
// prefix.
func Example() {
	tmp, _ := os.MkdirTemp("", "storeloop-auth-")
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "auth")
	if err := auth.Init(dir); err != nil {
		fmt.Println(err)
		return
	}
	creds := filepath.Join(dir, auth.RoleClient.CredsFile())
	role, _ := auth.CredsRole(creds)
	opts, _ := auth.ConnConfig{Creds: creds}.NATSOptions() // then nats.Connect(url, opts...)
	fmt.Println(role, auth.InboxPrefix(role), len(opts))
	// Output: client _INBOX_client 2
}
