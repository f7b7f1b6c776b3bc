package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// SettingsFile records, in an auth directory, the names and limits [Init]
// wrote the permissions for (no secrets), so that [AddUser] issues later
// users with the same permissions without being told them again.
const SettingsFile = "settings.json"

// settings is SettingsFile's content.
type settings struct {
	Prefix      string        `json:"prefix"`
	Stream      string        `json:"stream"`
	DLQStream   string        `json:"dlqStream"`
	RulePublish []string      `json:"rulePublish,omitempty"` // besides the scope's
	RuleSets    []string      `json:"ruleSets,omitempty"`
	Scope       *RuleSetScope `json:"scope,omitempty"`
	Limits      Limits        `json:"limits"`
}

// settings returns what c writes permissions for.
func (c *config) settings() ([]byte, error) {
	s := settings{Prefix: c.prefix, Stream: c.stream, DLQStream: c.dlqStream, RuleSets: c.ruleSets, Scope: c.scope, Limits: c.limits}
	for _, p := range c.rulePublish {
		if c.scope == nil || !slices.Contains(c.scope.Publish, p) {
			s.RulePublish = append(s.RulePublish, p)
		}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	return append(b, '\n'), err
}

// recordedOptions returns the options dir's SettingsFile records, checked
// as given ones are; none for a directory written before it existed.
func recordedOptions(dir string) ([]Option, error) {
	path := filepath.Join(dir, SettingsFile)
	body, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	var s settings
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	opts := []Option{WithCommandPrefix(s.Prefix), WithStream(s.Stream), WithRulePublish(s.RulePublish...),
		WithRuleSets(s.RuleSets...), WithLimits(s.Limits)}
	if s.DLQStream != "" { // absent from files written before it was recorded
		opts = append(opts, WithDeadLetterStream(s.DLQStream))
	}
	if s.Scope != nil {
		opts = append(opts, WithRuleSetScope(*s.Scope))
	}
	return opts, nil
}
