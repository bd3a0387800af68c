package queue_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shadowsync/shadowsync/queue"
)

// ExampleWork shows a worker loop: events for a thing coalesce into one key, a failed
// reconcile is retried with backoff, and a successful one resets the backoff.
func ExampleWork() {
	limiter, err := queue.NewRateLimiter[string](queue.RateLimitOptions{BaseDelay: 5 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	work := queue.NewWork(queue.WorkOptions[string]{RateLimiter: limiter})

	// Three deltas for the kitchen and one for the hall: two keys to reconcile.
	work.Add("kitchen")
	work.Add("hall")
	work.Add("kitchen")
	work.Add("kitchen")
	fmt.Println("queued:", work.Len())

	// The hall's device is unreachable for its first two attempts.
	failuresLeft := map[string]int{"hall": 2}
	reconcile := func(thing string) error {
		if failuresLeft[thing] > 0 {
			failuresLeft[thing]--
			return errors.New("device unreachable")
		}
		return nil
	}

	ctx := context.Background()
	for reconciled := 0; reconciled < 2; {
		thing, ok := work.Get(ctx)
		if !ok {
			break
		}
		if err := reconcile(thing); err != nil {
			fmt.Printf("%s: %v, retry %d\n", thing, err, work.NumRequeues(thing)+1)
			work.AddRateLimited(thing)
		} else {
			fmt.Printf("%s: reconciled after %d retries\n", thing, work.NumRequeues(thing))
			work.Forget(thing)
			reconciled++
		}
		work.Done(thing)
	}

	dropped, err := work.ShutDownWithDrain(ctx)
	fmt.Println("dropped:", dropped, "err:", err)
	// Output:
	// queued: 2
	// kitchen: reconciled after 0 retries
	// hall: device unreachable, retry 1
	// hall: device unreachable, retry 2
	// hall: reconciled after 2 retries
	// dropped: 0 err: <nil>
}
