package main

import (
	"fmt"

	"github.com/storeloop/storeloop/auth"
	"github.com/storeloop/storeloop/rulenode"
)

// ruleSetScope is the auth option restricting the rule node to what the
// rule set of the YAML file path can send (auth --rules FILE).
func ruleSetScope(path string) (auth.Option, error) {
	rs, err := rulenode.LoadFile(path)
	if err != nil {
		return nil, err
	}
	needs, err := rs.Needs()
	if err != nil {
		return nil, fmt.Errorf("--rules %s: %w", path, err)
	}
	return auth.WithRuleSetScope(auth.RuleSetScope{Set: rs.Name, Commands: needs.Commands, Publish: needs.Publish}), nil
}
