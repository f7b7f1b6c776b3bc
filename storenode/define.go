package storenode

import (
	"encoding/json"

	"github.com/storeloop/storeloop/events"
)

// define validates def and, for a new bucket, applies it and returns the
// schema event to append. A view's definition is completed first (see
// completeView), so that the event carries its derived key and schema.
// The same definition again is accepted without an event; a different one
// for an existing bucket is bucket_exists.
func (n *Node) define(def events.BucketDef) (*events.SchemaEvent, *events.Error) {
	if def.View != nil {
		if e := n.completeView(&def); e != nil {
			return nil, e
		}
	}
	if e := checkRetention(def); e != nil {
		return nil, e
	}
	sc, err := compileSchema(def)
	if err != nil {
		return nil, asContractError(err)
	}
	if b := n.state.Bucket(def.Bucket); b != nil {
		if sameDefinition(b.Def, def) {
			return nil, nil
		}
		return nil, events.Errorf(events.CodeBucketExists, "bucket %q is already defined differently", def.Bucket)
	}
	if _, err := n.state.Define(def); err != nil {
		return nil, events.Errorf(events.CodeInternal, "define: %v", err)
	}
	n.schemas[def.Bucket] = sc
	return &events.SchemaEvent{Definition: def}, nil
}

// sameDefinition compares definitions by their JSON form (maps marshal with
// sorted keys, so field order in the request does not matter).
func sameDefinition(a, b events.BucketDef) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
