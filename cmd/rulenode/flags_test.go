package main

import (
	"os"
	"testing"

	"github.com/storeloop/storeloop/rulenode"
)

func TestStartFlag(t *testing.T) {
	cases := []struct {
		name    string
		env     string
		args    []string
		want    rulenode.StartPolicy
		wantErr bool
	}{
		{name: "default", want: rulenode.StartAll},
		{name: "flag", args: []string{"--start", "new"}, want: rulenode.StartNew},
		{name: "environment", env: "new", want: rulenode.StartNew},
		{name: "flag over environment", env: "new", args: []string{"--start", "all"}, want: rulenode.StartAll},
		{name: "unknown", args: []string{"--start", "last"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_START", tc.env) // restored when the test ends
			if tc.env == "" {
				os.Unsetenv("STORELOOP_START")
			}
			f, err := parseFlags(append([]string{"--rules", "r.yaml"}, tc.args...))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %v, want an error", f.start)
				}
				return
			}
			if err != nil || f.start != tc.want {
				t.Fatalf("start = %v, %v; want %v", f, err, tc.want)
			}
		})
	}
}

func TestNumericFlagsFromEnvironment(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		want    int
		wantErr bool
	}{
		{name: "default", want: rulenode.DefaultConcurrency},
		{name: "environment", env: map[string]string{"STORELOOP_CONCURRENCY": "3"}, want: 3},
		{name: "flag over environment", env: map[string]string{"STORELOOP_CONCURRENCY": "3"}, args: []string{"--concurrency", "5"}, want: 5},
		{name: "malformed environment", env: map[string]string{"STORELOOP_CONCURRENCY": "many"}, wantErr: true},
		{name: "malformed duration", env: map[string]string{"STORELOOP_ACK_WAIT": "soon"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{"STORELOOP_CONCURRENCY", "STORELOOP_ACK_WAIT"} {
				t.Setenv(name, tc.env[name])
				if _, ok := tc.env[name]; !ok {
					os.Unsetenv(name)
				}
			}
			f, err := parseFlags(append([]string{"--rules", "r.yaml"}, tc.args...))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed concurrency %d, want an error", f.concurrency)
				}
				return
			}
			if err != nil || f.concurrency != tc.want {
				t.Fatalf("concurrency = %v, %v; want %d", f, err, tc.want)
			}
		})
	}
}

func TestScopedSubjectsFlag(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      bool
		wantErr   bool
	}{
		{name: "default"},
		{name: "flag", args: []string{"--scoped-subjects"}, want: true},
		{name: "environment", env: "true", want: true},
		{name: "flag over environment", env: "true", args: []string{"--scoped-subjects=false"}},
		{name: "not a boolean", env: "yes please", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_SCOPED_SUBJECTS", tc.env)
			if tc.env == "" {
				os.Unsetenv("STORELOOP_SCOPED_SUBJECTS")
			}
			f, err := parseFlags(append([]string{"--rules", "r.yaml"}, tc.args...))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %v, want an error", f.scoped)
				}
				return
			}
			if err != nil || f.scoped != tc.want {
				t.Fatalf("scoped = %v, %v; want %v", f, err, tc.want)
			}
		})
	}
}
