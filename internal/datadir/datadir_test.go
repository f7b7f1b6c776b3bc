package datadir_test

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/internal/datadir"
)

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = datadir.Acquire(dir)
	var held *datadir.HeldError
	if !errors.As(err, &held) || held.Holder.PID != os.Getpid() || held.Dir != dir {
		t.Fatalf("second Acquire: %v (%+v)", err, held)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l, err = datadir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l.Release()
}

func TestMark(t *testing.T) {
	dir := t.TempDir()
	m, err := datadir.ReadMark(dir, "S")
	if err != nil || !reflect.DeepEqual(m, datadir.Mark{Stream: "S"}) {
		t.Fatalf("no mark: %+v, %v", m, err)
	}
	want := datadir.Mark{Stream: "S", LastSeq: 42, Lost: []events.SeqRange{{First: 3, Last: 7}}}
	if err := datadir.WriteMark(dir, want); err != nil {
		t.Fatal(err)
	}
	if m, err = datadir.ReadMark(dir, "S"); err != nil || !reflect.DeepEqual(m, want) {
		t.Fatalf("mark %+v, %v; want %+v", m, err, want)
	}
	if m, err := datadir.ReadMark(dir, "OTHER"); err != nil || m.LastSeq != 0 {
		t.Fatalf("another stream's mark: %+v, %v", m, err)
	}
}

// BenchmarkWriteMark is the cost of one high-water mark write (temp file,
// fsync, rename, directory fsync): the node pays it at most once per
// storenode.MarkInterval, off the commit path.
func BenchmarkWriteMark(b *testing.B) {
	dir := b.TempDir()
	for i := range b.N {
		if err := datadir.WriteMark(dir, datadir.Mark{Stream: "S", LastSeq: uint64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}
