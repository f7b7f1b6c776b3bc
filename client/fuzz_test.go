package client

import (
	"errors"
	"testing"

	"github.com/storeloop/storeloop/events"
)

// FuzzDecodeReply checks that any reply body decodes to a result or to an
// *events.Error, never a panic or an untyped error.
func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{
		`{"result":{"id":1,"_version":1}}`,
		`{"result":null}`,
		`{"result":[1,2]}`,
		`{"error":{"code":"validation","message":"m","issues":[{"field":"f","message":"x","code":"min"}]}}`,
		`{"error":{"code":"conflict","op":1}}`,
		`{}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec events.Record
		err := decodeReply(data, &rec)
		var e *events.Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("decodeReply(%q) = %v, not an *events.Error", data, err)
		}
		if err != nil && e == nil {
			t.Fatalf("decodeReply(%q) returned a nil *events.Error", data)
		}
	})
}
