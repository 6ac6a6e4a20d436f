package stack

import (
	"testing"
	"time"
)

// TestClusterLosesAndRegainsLeader: each cluster elects a leader, elects
// another when it is killed, and takes it back as a follower on restart;
// a paused member is resumed into the cluster.
func TestClusterLosesAndRegainsLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts registry clusters")
	}
	for _, name := range []string{"consul", "etcd"} {
		t.Run(name, func(t *testing.T) {
			c := MustStartCluster(t, name)
			if got := len(c.Addrs()); got != map[string]int{"consul": 4, "etcd": 3}[name] {
				t.Errorf("%d addresses, want every member (and Consul's agent): %v", got, c.Addrs())
			}
			leader, err := c.Leader()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Kill(leader); err != nil {
				t.Fatal(err)
			}
			next, err := c.WaitLeader(30 * time.Second)
			if err != nil {
				t.Fatalf("no leader after %s was killed: %v", leader.Name, err)
			}
			if next == leader {
				t.Fatalf("%s still leads after kill -9", leader.Name)
			}
			if err := c.Restart(leader); err != nil {
				t.Fatal(err)
			}
			follower, err := c.Follower()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Pause(follower); err != nil {
				t.Fatal(err)
			}
			if err := c.Resume(follower); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WaitLeader(30 * time.Second); err != nil {
				t.Fatalf("after %s was restarted and %s resumed: %v", leader.Name, follower.Name, err)
			}
			if _, err := c.IDs("user"); err != nil {
				t.Errorf("reading the cluster: %v", err)
			}
		})
	}
}
