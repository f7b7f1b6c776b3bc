// Package examples holds the scenarios of the chapter storeloop grew from
// ("Store-Driven Rules") as data: each directory has the bucket definitions
// (buckets.yaml) and the rule set (rules.yaml) of one scenario. The demo,
// the tests and `storeloop bucket define -f` / `rulenode --rules` use them.
package examples

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"

	"go.yaml.in/yaml/v3"

	"github.com/storeloop/storeloop/events"
	"github.com/storeloop/storeloop/rulenode"
)

//go:embed */*.yaml
var files embed.FS

// FS is the example files, one directory per scenario.
var FS fs.FS = files

// Scenario is one example: its buckets and its rules.
type Scenario struct {
	Name    string
	Buckets []events.BucketDef
	Rules   *rulenode.RuleSet
}

// BucketsFile is the format of buckets.yaml (and of `storeloop bucket
// define -f` with several buckets).
type BucketsFile struct {
	Buckets []events.BucketDef `yaml:"buckets"`
}

// Load reads the scenario in directory name.
func Load(name string) (*Scenario, error) {
	data, err := fs.ReadFile(files, path.Join(name, "buckets.yaml"))
	if err != nil {
		return nil, fmt.Errorf("examples: %w", err)
	}
	var bf BucketsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&bf); err != nil {
		return nil, fmt.Errorf("examples: %s/buckets.yaml: %w", name, err)
	}
	rules, err := files.Open(path.Join(name, "rules.yaml"))
	if err != nil {
		return nil, fmt.Errorf("examples: %w", err)
	}
	defer rules.Close()
	set, err := rulenode.Load(rules, path.Join(name, "rules.yaml"))
	if err != nil {
		return nil, err
	}
	return &Scenario{Name: name, Buckets: bf.Buckets, Rules: set}, nil
}
