package store

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// TestMain doubles as the writer process TestKill9LeavesStoreConsistent
// starts: with BERTH_TEST_STORE set, this test binary writes and tags
// images there until killed, and runs no tests.
func TestMain(m *testing.M) {
	if root := os.Getenv("BERTH_TEST_STORE"); root != "" {
		if err := writeForever(root); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func writeForever(root string) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		img, _ := random.Image(256<<10, 3)
		if _, err := s.Write(img, fmt.Sprintf("w:%d", i)); err != nil {
			return err
		}
		s.Tag(fmt.Sprintf("w:%d", i), "latest-written")
		if i%3 == 2 {
			s.Remove(fmt.Sprintf("w:%d", i-1), false)
		}
	}
}

// TestKill9LeavesStoreConsistent kills writer processes with SIGKILL at
// random moments: every ref left must be whole, and only tmp/ leftovers
// (which check --repair and GC clear) may remain.
func TestKill9LeavesStoreConsistent(t *testing.T) {
	s := openTemp(t)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < 8; round++ {
		var procs []*exec.Cmd
		for i := 0; i < 2; i++ {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "BERTH_TEST_STORE="+s.Root)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			procs = append(procs, cmd)
		}
		time.Sleep(time.Duration(50+rng.Intn(400)) * time.Millisecond)
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
		res, err := s.Check(false)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, p := range res.Problems {
			if !strings.HasPrefix(p, "tmp:") {
				t.Fatalf("round %d: after kill -9: %s", round, p)
			}
		}
	}
	entries, _ := s.List()
	if len(entries) == 0 {
		t.Fatal("the writers wrote nothing: the test tested nothing")
	}
	if _, err := s.GC(); err != nil {
		t.Fatal(err)
	}
	if res, _ := s.Check(false); len(res.Problems) != 0 {
		t.Fatalf("after GC: %v", res.Problems)
	}
	t.Logf("%d refs survived 8 rounds of kill -9", len(entries))
}
