package examples_test

import (
	"fmt"

	"github.com/storeloop/storeloop/examples"
	"github.com/storeloop/storeloop/rulenode"
)

func ExampleLoad() {
	sc, err := examples.Load("reorder")
	if err != nil {
		panic(err)
	}
	for _, b := range sc.Buckets {
		fmt.Println("bucket", b.Bucket, "key", b.Key)
	}
	fmt.Println("rule set", sc.Rules.Name, "reads", sc.Rules.Subjects())
	// The rule writes the inventory it reads: Lint reports the loop its
	// condition guards at run time.
	for _, c := range rulenode.Lint(sc.Rules) {
		fmt.Println("cycle", c)
	}
	// Output:
	// bucket inventory key sku
	// bucket reorderRequests key id
	// rule set reorder reads [bucket.inventory.updated]
	// cycle reorder/reorder-on-low-stock (noLoop) -[bucket.inventory.updated]-> reorder/reorder-on-low-stock
}
