package rulenode

import (
	"slices"
	"strings"

	"github.com/storeloop/storeloop/events"
)

// Cycle is a loop between rules: each rule writes an event subject that
// the next one reads, and the last one's write is read by the first. At run
// time only hop limits, When guards or NoLoop stop such a loop.
type Cycle struct {
	// Rules are "set/rule" names in loop order.
	Rules []string
	// Subjects[i] is written by Rules[i] and read by the rule after it.
	Subjects []string
	// NoLoop[i] tells whether Rules[i] ignores its own writes.
	NoLoop []bool
}

// Guarded reports whether NoLoop alone breaks the cycle: a rule that
// triggers itself and ignores its own writes.
func (c Cycle) Guarded() bool { return len(c.Rules) == 1 && c.NoLoop[0] }

func (c Cycle) String() string {
	var b strings.Builder
	for i, r := range c.Rules {
		b.WriteString(r)
		if c.NoLoop[i] {
			b.WriteString(" (noLoop)")
		}
		b.WriteString(" -[" + c.Subjects[i] + "]-> ")
	}
	b.WriteString(c.Rules[0])
	return b.String()
}

// maxCycles bounds Lint's report on a pathological graph.
const maxCycles = 1000

// Lint reports every cycle (up to a thousand) of the graph in which a rule
// points to the rules reading the event subjects it writes: insert writes
// bucket.<b>.inserted, update .updated, upsert both, delete .deleted, tx
// and forEach what their actions write. A Go rule writes what its Writes
// declares. Cycles come in a fixed order: by their first rule in set and
// rule order, each starting at its earliest rule.
func Lint(sets ...*RuleSet) []Cycle {
	type node struct {
		name   string
		rule   *Rule
		writes []string
	}
	var nodes []node
	for _, rs := range sets {
		for _, r := range rs.Rules {
			nodes = append(nodes, node{name: rs.Name + "/" + r.ID, rule: r, writes: ruleWrites(r)})
		}
	}
	// edge[i][j] is the first subject i writes that j reads, "" for none.
	edge := make([][]string, len(nodes))
	for i, a := range nodes {
		edge[i] = make([]string, len(nodes))
		for j, b := range nodes {
			for _, s := range a.writes {
				if slices.ContainsFunc(b.rule.On, func(f string) bool { return filtersOverlap(f, s) }) {
					edge[i][j] = s
					break
				}
			}
		}
	}
	comp := components(edge)
	var cycles []Cycle
	var stack []int
	onStack := make([]bool, len(nodes))
	var walk func(start, v int)
	walk = func(start, v int) {
		for w := start; w < len(nodes) && len(cycles) < maxCycles; w++ {
			// Only rules of the start's strongly connected component can
			// lead back to it; skipping the others keeps the search small.
			if edge[v][w] == "" || comp[w] != comp[start] {
				continue
			}
			if w == start {
				c := Cycle{}
				for k, x := range stack {
					next := start
					if k+1 < len(stack) {
						next = stack[k+1]
					}
					c.Rules = append(c.Rules, nodes[x].name)
					c.Subjects = append(c.Subjects, edge[x][next])
					c.NoLoop = append(c.NoLoop, nodes[x].rule.NoLoop)
				}
				cycles = append(cycles, c)
			} else if !onStack[w] {
				stack, onStack[w] = append(stack, w), true
				walk(start, w)
				stack, onStack[w] = stack[:len(stack)-1], false
			}
		}
	}
	for s := range nodes {
		stack, onStack[s] = []int{s}, true
		walk(s, s)
		onStack[s] = false
	}
	return cycles
}

// components numbers the strongly connected components of the graph
// (Tarjan's algorithm): comp[i] == comp[j] when i and j reach each other.
func components(edge [][]string) []int {
	n := len(edge)
	comp, low, order := make([]int, n), make([]int, n), make([]int, n)
	for i := range order {
		order[i], comp[i] = -1, -1
	}
	var stack []int
	onStack := make([]bool, n)
	next, ncomp := 0, 0
	var visit func(v int)
	visit = func(v int) {
		order[v], low[v] = next, next
		next++
		stack, onStack[v] = append(stack, v), true
		for w := range n {
			switch {
			case edge[v][w] == "":
			case order[w] < 0:
				visit(w)
				low[v] = min(low[v], low[w])
			case onStack[w]:
				low[v] = min(low[v], order[w])
			}
		}
		if low[v] == order[v] {
			for {
				w := stack[len(stack)-1]
				stack, onStack[w] = stack[:len(stack)-1], false
				comp[w] = ncomp
				if w == v {
					break
				}
			}
			ncomp++
		}
	}
	for v := range n {
		if order[v] < 0 {
			visit(v)
		}
	}
	return comp
}

// ruleWrites returns the event subjects a rule can cause, sorted.
func ruleWrites(r *Rule) []string {
	if r.Handler != nil {
		return slices.Sorted(slices.Values(r.Writes))
	}
	set := map[string]bool{}
	var walk func([]*Action)
	walk = func(acts []*Action) {
		for _, a := range acts {
			for _, op := range writeOps(a.Kind) {
				set[events.EventSubject(a.Bucket, op)] = true
			}
			walk(a.Ops)
			walk(a.Do)
		}
	}
	walk(r.Then)
	return sortedKeys(set)
}

func writeOps(k ActionKind) []events.Op {
	switch k {
	case KindInsert:
		return []events.Op{events.OpInserted}
	case KindUpdate:
		return []events.Op{events.OpUpdated}
	case KindUpsert:
		return []events.Op{events.OpInserted, events.OpUpdated}
	case KindDelete:
		return []events.Op{events.OpDeleted}
	}
	return nil
}
