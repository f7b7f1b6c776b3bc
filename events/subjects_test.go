package events

import (
	"strings"
	"testing"
)

func TestFilterCoversSubjects(t *testing.T) {
	tests := []struct {
		filter, subject string
		want            bool
	}{
		{"bucket.orders.updated", "bucket.orders.updated", true},
		{"bucket.orders.updated", "bucket.orders.inserted", false},
		{"bucket.*.updated", "bucket.orders.updated", true},
		{"bucket.*.updated", "bucket.orders.x.updated", false},
		{"bucket.*", "bucket.orders.updated", false},
		{"bucket.>", "bucket.orders.updated", true},
		{"bucket.>", "bucket", false},
		{"bucket.orders.>", "bucket.orders.updated", true},
		{"*.*.*", "bucket.orders.updated", true},
		{"*.*", "bucket.orders.updated", false},
		{">", "bucket.orders.updated", true},
		{"bucket.orders", "bucket.orders.updated", false},
		{"bucket.orders.updated.x", "bucket.orders.updated", false},
	}
	for _, tc := range tests {
		t.Run(tc.filter+" "+tc.subject, func(t *testing.T) {
			if got := FilterCovers(tc.filter, tc.subject); got != tc.want {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestIsMutation(t *testing.T) {
	writes := map[string]bool{CmdDefine: true, CmdInsert: true, CmdUpdate: true, CmdUpsert: true, CmdDelete: true, CmdTx: true}
	for _, cmd := range Commands {
		t.Run(cmd, func(t *testing.T) {
			if got := IsMutation(cmd); got != writes[cmd] {
				t.Fatalf("IsMutation(%q) = %v, want %v", cmd, got, writes[cmd])
			}
		})
	}
}

func TestValidBucketName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"orders", true},
		{"Order_items-2", true},
		{"a", true},
		{strings.Repeat("b", MaxBucketNameLen), true},
		{strings.Repeat("b", MaxBucketNameLen+1), false},
		{"", false},
		{"orders.x", false},
		{"orders*", false},
		{"or ders", false},
		{"ördersx", false},
		{"orders>", false},
	}
	for _, tt := range tests {
		if got := ValidBucketName(tt.name); got != tt.want {
			t.Errorf("ValidBucketName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
