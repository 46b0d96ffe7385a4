package cluster

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// The whole etcd key schema of Eddy. Every key lives under "eddy/" and is
// written under the lease of its writer's Session, so it vanishes when that
// process dies. Free-form names (namespaces, actions, ids) are path-escaped
// (seg) so that a '/' inside a name can never make one key a prefix of
// another: namespace "a" and namespace "a/b" have disjoint subtrees. Every
// prefix used for a range read ends in '/', so "a" never matches "ab".
//
// Values are the JSON encodings of the whisk types named below. Schedulers
// and invokers each own one lease (their Session); controllers own none and
// only read and watch.
//
//	key                                                    value               lease            writer → readers
//	eddy/scheduler/<sid>                                   whisk.SchedulerInfo scheduler        Session.RegisterScheduler → Client.Schedulers (controllers pick the least loaded)
//	eddy/invoker/<iid>                                     whisk.InvokerInfo   invoker          Session.RegisterInvoker → Client.Invokers (schedulers' creators)
//	eddy/queue/<ns>/<action>/leader                        whisk.LeaderInfo    leader scheduler Session.ElectLeader (put-if-absent) → Client.Leader, Client.WatchLeaders (controllers, schedulers, proxies)
//	eddy/queue/<ns>/<action>/follower/<sid>                whisk.LeaderInfo    follower         Session.RegisterFollower (a scheduler asked to follow) → Client.Followers (the leader recruiting), Client.WatchLeader (followers: deleted with the leader key = queue retired)
//	eddy/container/<ns>/<action>/<rev>/<iid>/<cid>         whisk.ContainerInfo invoker          Session.RegisterContainer (the container's proxy) → Client.CountContainers, CountNamespace, Containers
//	eddy/creating/<ns>/<action>/<rev>/<sid>/<creationId>   whisk.CreationInfo  scheduler        Session.PutCreation (the scheduler's creator) → Client.CountCreations, CountNamespace
//	eddy/admitted/<ns>                                     "" (a bump)         scheduler        Session.PutCreation (with every creation key it admits) → its own compare: a creation counted before another scheduler's admission is refused (no overshoot)
//	eddy/demand/<ns>/<action>                              whisk.LeaderInfo    scheduler        Session.PutDemand (a leader queue refused by its namespace limit, below its fair share) → Client.NamespaceShare (share.go: the queues of the namespace)
//	eddy/throttle/<ns>[/<action>]                          "true"/"false"      scheduler        (reserved: throttling, later)
//	eddy/handout/<ns>/<action>/<aid>                       whisk.Handout       none (see below) PutHandout (the leader queue, fenced by its epoch, before answering the fetch) → Session.ClaimHandouts (the next leader)
//	eddy/alarmshard/<n>                                    provider id (text)  scheduler        Session.ClaimAlarmShard (put-if-absent by a scheduler's alarms provider) → Client.AlarmShardOwners (every provider, polling)
//
// Besides, Client.Status (status.go) reads the scheduler, invoker, queue,
// container and creation subtrees whole, in one transaction, for operators
// (`eddy status`, GET /eddy/v1/status); nothing on the invocation path does.
const root = "eddy/"

// seg escapes one free-form path segment. url.PathEscape turns '/' into
// "%2F" (and '%' into "%25"), so an escaped segment never contains '/'.
func seg(s string) string { return url.PathEscape(s) }

// unseg reverses seg.
func unseg(s string) (string, bool) {
	u, err := url.PathUnescape(s)
	return u, err == nil
}

func revSeg(rev int64) string { return strconv.FormatInt(rev, 10) }

// eddy/scheduler/<sid>: a scheduler's endpoint and load.
// Written by the scheduler (RegisterScheduler) under its lease, rewritten
// when its queue count changes; read by controllers (Schedulers) to choose
// where to create a queue.
func schedulerKey(sid string) string { return schedulerPrefix() + seg(sid) }
func schedulerPrefix() string        { return root + "scheduler/" }

// eddy/invoker/<iid>: an invoker's health and free memory.
// Written by the invoker (RegisterInvoker) under its lease; read by the
// schedulers' container creators (Invokers) to place containers.
func invokerKey(iid string) string { return invokerPrefix() + seg(iid) }
func invokerPrefix() string        { return root + "invoker/" }

// eddy/queue/<ns>/<action>/leader: the scheduler holding the action's leader
// queue. Written put-if-absent by the winning scheduler (ElectLeader) under
// its lease, deleted by ResignLeader (only if still under that lease) or by
// the lease's end. NOT re-put on a lease re-grant: the scheduler re-elects in
// its OnRegrant hook. Read by controllers and proxies (Leader), watched by
// controllers and followers (WatchLeaders).
func leaderKey(f whisk.FQN) string { return queueActionPrefix(f) + "leader" }

// eddy/queue/<ns>/<action>/follower/<sid>: a scheduler following the
// action's leader queue (holding no activations, ready to take over).
// Written by the follower (RegisterFollower) under its lease, deleted by it
// (DeregisterFollower) when it stops following, by the leader together with
// the leader key when the queue is retired on purpose (RetireQueue: idle,
// action deleted), or with the follower's lease. Listed by the leader
// (Followers) to recruit the missing ones; watched by followers
// (WatchLeader).
func followerKey(f whisk.FQN, sid string) string { return followerPrefix(f) + seg(sid) }
func followerPrefix(f whisk.FQN) string          { return queueActionPrefix(f) + "follower/" }

func queuePrefix() string { return root + "queue/" }
func queueActionPrefix(f whisk.FQN) string {
	return queuePrefix() + seg(f.Namespace) + "/" + seg(f.Name) + "/"
}

// parseLeaderKey extracts the action from a leader key; ok is false for any
// other key under queuePrefix (followers).
func parseLeaderKey(key string) (f whisk.FQN, ok bool) {
	rest, found := strings.CutPrefix(key, queuePrefix())
	if !found {
		return f, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "leader" {
		return f, false
	}
	ns, ok1 := unseg(parts[0])
	name, ok2 := unseg(parts[1])
	if !ok1 || !ok2 {
		return f, false
	}
	return whisk.FQN{Namespace: ns, Name: name}, true
}

// eddy/container/<ns>/<action>/<rev>/<iid>/<cid>: one running container able
// to take work. Written by the container's proxy (RegisterContainer) under
// the invoker's lease, deleted when the container goes idle or is removed
// (DeregisterContainer) or with the invoker's lease. Counted count-only by
// the action's queue (CountContainers, per revision) and by namespace limits
// (CountNamespace); listed by Containers.
func containerKey(c whisk.ContainerInfo) string {
	return containerRevPrefix(c.FQN(), c.Rev) + seg(c.InvokerID) + "/" + seg(c.ContainerID)
}
func containerNamespacePrefix(ns string) string { return root + "container/" + seg(ns) + "/" }
func containerActionPrefix(f whisk.FQN) string {
	return containerNamespacePrefix(f.Namespace) + seg(f.Name) + "/"
}
func containerRevPrefix(f whisk.FQN, rev int64) string {
	return containerActionPrefix(f) + revSeg(rev) + "/"
}

// eddy/creating/<ns>/<action>/<rev>/<sid>/<creationId>: one in-flight
// container creation. Written by the scheduler that asked an invoker for the
// container (PutCreation) under the scheduler's lease; deleted on the
// invoker's ack or on timeout (DeleteCreation) or with the lease. Counted
// count-only by the queue (CountCreations) and by namespace limits
// (CountNamespace).
func creationKey(c whisk.CreationInfo) string {
	f := whisk.FQN{Namespace: c.Namespace, Name: c.Action}
	return creationRevPrefix(f, c.Rev) + seg(c.SchedulerID) + "/" + seg(c.CreationID)
}
func creationNamespacePrefix(ns string) string { return root + "creating/" + seg(ns) + "/" }

// admittedKey is bumped with every creation admitted in namespace ns.
func admittedKey(ns string) string { return root + "admitted/" + seg(ns) }
func creationRevPrefix(f whisk.FQN, rev int64) string {
	return creationNamespacePrefix(f.Namespace) + seg(f.Name) + "/" + revSeg(rev) + "/"
}

// eddy/handout/<ns>/<action>/<aid>: an activation a leader queue handed to
// a container, not yet known to be finished and recorded. Written by the
// leader queue (PutHandout) in a transaction fenced by the leader key's
// creation revision, before the container is answered; deliberately under
// NO lease, because it must outlive both the leader and the invoker (when
// both die, the successor still learns of it and gives it an error record).
// Deleted by the leader once the activation is known finished (its
// container fetched past it, or its record is found) or failed by the
// queue (DeleteHandouts, or in a later PutHandout's transaction). Read by
// the next leader when its queue starts (ClaimHandouts).
func handoutPrefix(f whisk.FQN) string {
	return root + "handout/" + seg(f.Namespace) + "/" + seg(f.Name) + "/"
}
func handoutKey(f whisk.FQN, id whisk.ActivationID) string { return handoutPrefix(f) + seg(string(id)) }

// eddy/throttle/<ns> and eddy/throttle/<ns>/<action>: reserved for
// throttling flags, under the scheduler's lease; read with exact gets only
// (the namespace key is a prefix of its actions' keys by design).
func throttleNamespaceKey(ns string) string { return root + "throttle/" + seg(ns) }
func throttleActionKey(f whisk.FQN) string {
	return throttleNamespaceKey(f.Namespace) + "/" + seg(f.Name)
}

// eddy/alarmshard/<n>: the alarms provider that fires the alarms of shard
// n (internal/alarms: an alarm's shard is a hash of its trigger's name).
// Written put-if-absent by the provider of a scheduler (ClaimAlarmShard)
// under the scheduler's lease, so it vanishes with the scheduler and
// another provider claims it; deleted by ReleaseAlarmShard (only if still
// under that lease) when the provider stops. NOT re-put on a lease
// re-grant: the provider claims it again on its next poll (taking it over
// from a former lease of its session). Read whole by every provider
// (AlarmShardOwners) each poll. Ownership only says who should fire: the
// fence against firing a tick twice is the compare-and-swap on the alarm's
// document in the store (docs/alarms.md).
func alarmShardKey(n int) string { return alarmShardPrefix() + strconv.Itoa(n) }
func alarmShardPrefix() string   { return root + "alarmshard/" }

// parseFollowerKey extracts the action and the follower's scheduler id from
// a follower key; ok is false for any other key under queuePrefix.
func parseFollowerKey(key string) (f whisk.FQN, sid string, ok bool) {
	rest, found := strings.CutPrefix(key, queuePrefix())
	if !found {
		return f, "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[2] != "follower" {
		return f, "", false
	}
	ns, ok1 := unseg(parts[0])
	name, ok2 := unseg(parts[1])
	id, ok3 := unseg(parts[3])
	if !ok1 || !ok2 || !ok3 {
		return f, "", false
	}
	return whisk.FQN{Namespace: ns, Name: name}, id, true
}

// containerPrefix and creationPrefix hold every container and every
// in-flight creation (read whole only by Client.Status).
func containerPrefix() string { return root + "container/" }
func creationPrefix() string  { return root + "creating/" }
