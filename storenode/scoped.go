package storenode

import (
	"slices"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// scopedEndpoint is the micro endpoint name and subject (below the
// prefix) of cmd's bucket-scoped subjects: one bucket token, or for a
// transaction as many as it touches.
func scopedEndpoint(cmd string) (name, subject string) {
	if cmd == events.CmdTx {
		return cmd + "_scoped", cmd + ".>"
	}
	return cmd + "_scoped", cmd + ".*"
}

// checkScope refuses a request on a bucket-scoped subject whose buckets
// are not those of its body: NATS permissions were checked against the
// subject, so the subject must say what the command touches.
func checkScope(prefix, cmd, subject string, body any) *events.Error {
	got := strings.Split(strings.TrimPrefix(subject, prefix+"."+cmd+"."), ".")
	var want []string
	if tx, ok := body.(*events.TxRequest); ok {
		want = tx.Buckets()
	} else {
		want = []string{bucketOf(body)}
	}
	if !slices.Equal(got, want) {
		return events.Errorf(events.CodeBadRequest, "subject %s names buckets %s, the request touches %s",
			subject, strings.Join(got, ","), strings.Join(want, ","))
	}
	return nil
}
