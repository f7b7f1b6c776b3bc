package main

import (
	"os"
	"strings"
	"testing"
)

func TestDeadLetterStreamFlag(t *testing.T) {
	cases := []struct {
		name, env, want, wantErr string
		args                     []string
	}{
		{name: "default", want: "STORELOOP_DLQ"},
		{name: "flag", args: []string{"--dlq-stream", "SHOP_DLQ"}, want: "SHOP_DLQ"},
		{name: "environment", env: "ENV_DLQ", want: "ENV_DLQ"},
		{name: "flag over environment", env: "ENV_DLQ", args: []string{"--dlq-stream", "SHOP_DLQ"}, want: "SHOP_DLQ"},
		{name: "not a stream name", args: []string{"--dlq-stream", "a.b"}, wantErr: `--dlq-stream "a.b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STORELOOP_DLQ_STREAM", tc.env)
			if tc.env == "" {
				os.Unsetenv("STORELOOP_DLQ_STREAM")
			}
			f, err := parseFlags(append([]string{"--rules", "r.yaml"}, tc.args...))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || f.dlqStream != tc.want {
				t.Fatalf("dlq stream = %+v, %v; want %s", f, err, tc.want)
			}
		})
	}
}
