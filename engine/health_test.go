package engine

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestHealthcheckConfig(t *testing.T) {
	img := &v1.ConfigFile{Config: v1.Config{Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "/check"}, Interval: time.Minute}}}
	h, err := healthcheck(&Container{ImageConfig: img})
	if err != nil || h == nil || h.Test[1] != "/check" || h.Interval != time.Minute || h.Timeout != defaultHealthTimeout || h.Retries != defaultHealthRetries {
		t.Errorf("the image's: %+v %v", h, err)
	}
	h, err = healthcheck(&Container{ImageConfig: img, Opts: Options{HealthCmd: "true", HealthInterval: "5s", HealthRetries: 1}})
	if err != nil || h == nil || strings.Join(h.Test, " ") != "CMD-SHELL true" || h.Interval != 5*time.Second || h.Retries != 1 {
		t.Errorf("options over the image's: %+v %v", h, err)
	}
	if h, _ := healthcheck(&Container{ImageConfig: img, Opts: Options{NoHealthcheck: true}}); h != nil {
		t.Errorf("--no-healthcheck: %+v", h)
	}
	none := &v1.ConfigFile{Config: v1.Config{Healthcheck: &v1.HealthConfig{Test: []string{"NONE"}}}}
	if h, _ := healthcheck(&Container{ImageConfig: none}); h != nil {
		t.Errorf("HEALTHCHECK NONE: %+v", h)
	}
	for _, o := range []Options{{HealthCmd: "x", HealthInterval: "soon"}, {HealthCmd: "x", HealthTimeout: "-1s"}, {HealthCmd: "x", HealthRetries: -2}} {
		if _, err := healthcheck(&Container{Opts: o}); err == nil {
			t.Errorf("%+v was accepted", o)
		}
	}
}

// The supervisor runs the check while the container runs: unhealthy after
// --health-retries failures, healthy once it passes, a check past its
// timeout killed and failed.
func TestHealthcheckRuns(t *testing.T) {
	bb := busyboxImage(t)
	a := append(append([]string{"run", "-d", "--network", "none", "--health-cmd", "test -f /ok", "--health-interval", "100ms", "--health-retries", "2"}, sec(t)...), bb, "sleep", "60")
	id := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", id) })
	status := func() string {
		return strings.TrimSpace(berthOK(t, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", id))
	}
	waitFor := func(want string) {
		t.Helper()
		for i := 0; i < 200 && status() != want; i++ {
			time.Sleep(25 * time.Millisecond)
		}
		if got := status(); got != want {
			t.Fatalf("health %q, want %q", got, want)
		}
	}
	waitFor(HealthUnhealthy)
	berthOK(t, "exec", id, "touch", "/ok")
	waitFor(HealthHealthy)
	if st := berthOK(t, "ps", "--filter", "id="+id, "--format", "{{.Status}}"); !strings.Contains(st, "(healthy)") {
		t.Errorf("ps status %q", st)
	}
	if ids := berthOK(t, "ps", "-q", "--no-trunc", "--filter", "health=healthy"); !strings.Contains(ids, id) {
		t.Errorf("ps --filter health=healthy: %q", ids)
	}

	a = append(append([]string{"run", "-d", "--network", "none", "--health-cmd", "sleep 30; true", "--health-timeout", "100ms", "--health-interval", "200ms"}, sec(t)...), bb, "sleep", "60")
	slow := strings.TrimSpace(berthOK(t, a...))
	t.Cleanup(func() { berth(t, "", "rm", "-f", slow) })
	var out string
	for i := 0; i < 40; i++ { // a second: the shell's child must not hold the check up
		out = berthOK(t, "inspect", "-f", "{{if .State.Health}}{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}|{{end}}{{end}}", slow)
		if strings.Contains(out, "exceeded timeout") {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !strings.HasPrefix(out, "-1 Health check exceeded timeout") {
		t.Errorf("a check past its timeout: %q", out)
	}
	time.Sleep(50 * time.Millisecond)
	if ps := berthOK(t, "exec", slow, "ps"); strings.Count(ps, "sleep 30") > 2 {
		t.Errorf("checks past their timeout were left running:\n%s", ps)
	}
	if _, stderr, code := berth(t, "", "run", "--rm", "--health-interval", "soon", bb, "true"); code != 125 || !strings.Contains(stderr, "--health-interval") {
		t.Errorf("a bad --health-interval: %d %q", code, stderr)
	}
}
