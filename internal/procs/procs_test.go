package procs

import (
	"testing"
	"time"
)

func TestSum(t *testing.T) {
	body := `# HELP storeloop_rule_firings_total Rule executions.
# TYPE storeloop_rule_firings_total counter
storeloop_rule_firings_total{rule="a"} 3
storeloop_rule_firings_total{rule="b"} 4.5
storeloop_rule_firings_total_extra 100
storeloop_rule_failures_total{rule="a"} 7
storeloop_up 1
`
	for _, tc := range []struct {
		name, metric string
		want         float64
	}{
		{"labelled samples add up", "storeloop_rule_firings_total", 7.5},
		{"a longer name is another family", "storeloop_rule_firings_total_extra", 100},
		{"no labels", "storeloop_up", 1},
		{"absent", "storeloop_nothing", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sum(body, tc.metric); got != tc.want {
				t.Errorf("Sum(%s) = %v, want %v", tc.metric, got, tc.want)
			}
		})
	}
}

func TestProcLifecycle(t *testing.T) {
	sh := Spec{Name: "sh", Bin: "/bin/sh", Args: []string{"-c", `echo "ready port=1"; echo oops >&2; exec sleep 60`}}
	p := Start(t, sh)
	if got := p.WaitLine(t, false, "ready", 10*time.Second); got != "ready port=1" {
		t.Errorf("stdout line = %q", got)
	}
	if got := p.WaitLine(t, true, "oops", 10*time.Second); got != "oops" {
		t.Errorf("stderr line = %q", got)
	}
	if p.Exited() {
		t.Fatal("exited early")
	}
	p.Kill(t)
	if !p.Exited() {
		t.Error("still running after Kill")
	}

	ok := Start(t, Spec{Name: "term", Bin: "/bin/sh", Args: []string{"-c", `trap 'exit 0' TERM; echo up; while :; do sleep 0.01; done`}})
	ok.WaitLine(t, false, "up", 10*time.Second)
	ok.Stop(t, 10*time.Second)
}
