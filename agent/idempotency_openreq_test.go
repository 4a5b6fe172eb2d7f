package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluiceio/sluice/spool"
)

// After a machine crash cut a two-message keyed request to its first
// record, the copier reads that record at start and lets the request go
// once it read the spool to its end, also while a keyed push is in flight:
// a drop_oldest spool then drops past it again. (With a keyed push in
// flight the copier waited in Read for the request's rest, which no append
// can add, its first record never acknowledged and pinned: every append
// that needed a drop was refused for good.)
func TestDropOldestGoesOnPastAKeyedRequestACrashLeftOpen(t *testing.T) {
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 1 << 20, FullPolicy: spool.DropOldest, SegmentBytes: 4 << 20, Logger: quiet()}
	main, err := spool.Open(filepath.Join(dir, "spool"), so)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("req"))
	first := Msg{Time: time.Now().UnixNano(), Topic: "t", Value: bytes.Repeat([]byte("a"), 500<<10),
		IdemKey: "order-1", IdemHash: binary.AppendUvarint(h[:], 2)}
	if _, err := main.Append(context.Background(), appendMsg(nil, &first)); err != nil {
		t.Fatal(err)
	}
	if err := main.Close(); err != nil { // the crash: the request's second record never made it
		t.Fatal(err)
	}
	main, err = spool.Open(filepath.Join(dir, "spool"), so) // restart
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	idx, err := spool.Open(filepath.Join(dir, "spool", IdempotencyStoreDir), IdempotencyStoreOptions(0, quiet()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := openIdemStore(main, idx, 10*time.Minute, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()

	filler := appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Topic: "t", Value: bytes.Repeat([]byte("f"), 600<<10)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st.appending() // the client's keyed retry, in flight as the copier starts (appendKeyed)
	done := make(chan struct{})
	go func() { defer close(done); st.runCopier(ctx, 20*time.Millisecond) }()
	defer func() { cancel(); <-done }() // before st.close
	time.Sleep(200 * time.Millisecond)  // the copier read the cut request's first record
	_, err = main.Append(context.Background(), filler)
	st.appended(0) // the retry's outcome: refused
	t.Logf("keyed retry: %v", err)

	waitFor(t, "an append whose drop passes the open request accepted", func() bool {
		_, err := main.Append(context.Background(), filler)
		if err != nil && !errors.Is(err, spool.ErrFull) {
			t.Fatal(err)
		}
		return err == nil
	})
}

// A copier that stops going round (stuck for any reason) holds a
// drop_oldest spool at most pinBound after its last turn: an append that
// needs a drop of records it has not acknowledged is refused while the pin
// holds, and accepted once it gave up. (Without the bound a stuck copier
// held every such drop for good.)
func TestPinOfAStuckCopierEndsWithinItsBound(t *testing.T) {
	old := pinBound
	pinBound = 2 * time.Second
	t.Cleanup(func() { pinBound = old })
	dir := t.TempDir()
	so := spool.Options{MaxBytes: 1 << 20, FullPolicy: spool.DropOldest, SegmentBytes: 4 << 20, Logger: quiet()}
	main, err := spool.Open(filepath.Join(dir, "spool"), so)
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	big := appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Topic: "t", Value: bytes.Repeat([]byte("a"), 500<<10)})
	if _, err := main.Append(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	idx, err := spool.Open(filepath.Join(dir, "spool", IdempotencyStoreDir), IdempotencyStoreOptions(0, quiet()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := openIdemStore(main, idx, 10*time.Minute, quiet()) // its copier never runs: stuck
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	filler := appendMsg(nil, &Msg{Time: time.Now().UnixNano(), Topic: "t", Value: bytes.Repeat([]byte("f"), 600<<10)})
	st.turned.Store(time.Now().UnixNano())
	if _, err := main.Append(context.Background(), filler); !errors.Is(err, spool.ErrFull) {
		t.Fatalf("append whose drop takes a record the copier has not acknowledged, within the bound: %v, want ErrFull", err)
	}
	waitFor(t, "an append whose drop passes the stuck copier accepted", func() bool {
		_, err := main.Append(context.Background(), filler)
		if err != nil && !errors.Is(err, spool.ErrFull) {
			t.Fatal(err)
		}
		return err == nil
	})
}
