package events

import (
	"encoding/json"
	"math"
	"testing"
)

func TestKeyStringNumbersAreCanonical(t *testing.T) {
	for _, tc := range []struct {
		key  any
		want string
	}{
		{0.0, "n:0"}, {math.Copysign(0, -1), "n:0"}, {1.0, "n:1"}, {int64(1), "n:1"},
		{json.Number("1e0"), "n:1"}, {json.Number("-0.0"), "n:0"}, {"-0", "s:-0"},
	} {
		if got, err := KeyString(tc.key); err != nil || got != tc.want {
			t.Errorf("KeyString(%#v) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
}
