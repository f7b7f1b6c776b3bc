package storenode_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/storenode"
)

// A store node with its embedded NATS server, driven by plain NATS requests
// as a client in any language would send them.
func Example() {
	dir, err := os.MkdirTemp("", "storenode-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, opts, err := storenode.StartEmbedded(storenode.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	ctx := context.Background()
	node, err := storenode.Start(ctx, nc, append(opts, storenode.WithLogger(slog.New(slog.DiscardHandler)))...)
	if err != nil {
		panic(err)
	}
	defer node.Stop(ctx)

	send := func(cmd, body string) (result map[string]any, errCode string) {
		reply, err := nc.Request("store."+cmd, []byte(body), 5*time.Second)
		if err != nil {
			panic(err)
		}
		var r struct {
			Result map[string]any
			Error  *struct{ Code string }
		}
		if err := json.Unmarshal(reply.Data, &r); err != nil {
			panic(err)
		}
		if r.Error != nil {
			return nil, r.Error.Code
		}
		return r.Result, ""
	}
	send("define", `{"bucket":"orders","key":"id","schema":{
		"id":     {"type":"number","generated":"autoincrement"},
		"userId": {"type":"string","required":true},
		"total":  {"type":"number","required":true,"min":0},
		"status": {"type":"string","enum":["pending","shipped"],"default":"pending"}}}`)

	// Every mutation is an event on bucket.<bucket>.<op>.
	sub, err := nc.SubscribeSync("bucket.orders.>")
	if err != nil {
		panic(err)
	}
	rec, _ := send("insert", `{"bucket":"orders","record":{"userId":"alice","total":250}}`)
	fmt.Println(rec["id"], rec["userId"], rec["total"], rec["status"], rec["_version"])
	if ev, err := sub.NextMsg(5 * time.Second); err == nil {
		fmt.Println(ev.Subject)
	}

	rec, _ = send("update", `{"bucket":"orders","key":1,"changes":{"status":"shipped"},"expectVersion":1}`)
	fmt.Println(rec["status"], rec["_version"])
	_, code := send("update", `{"bucket":"orders","key":1,"changes":{"status":"pending"},"expectVersion":1}`)
	fmt.Println(code)
	_, code = send("insert", `{"bucket":"orders","record":{"total":-1}}`)
	fmt.Println(code)
	// Output:
	// 1 alice 250 pending 1
	// bucket.orders.inserted
	// shipped 2
	// conflict
	// validation
}
