package flock

import (
	"path/filepath"
	"testing"
	"time"
)

// An exclusive lock waits for a shared one to go; shared locks share.
func TestExclusiveWaitsForShared(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	r1, err := Lock(p, false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Lock(p, false) // a second shared lock does not wait
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		u, err := Lock(p, true)
		if err != nil {
			t.Error(err)
		}
		got <- time.Now()
		u()
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-got:
		t.Fatal("exclusive lock taken while shared ones are held")
	default:
	}
	released := time.Now()
	r1()
	r2()
	if at := <-got; at.Before(released) {
		t.Fatal("exclusive lock taken before the release")
	}
}
