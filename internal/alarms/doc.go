// Package alarms is Eddy's built-in alarms provider: the feed actions of the
// /whisk.system/alarms package (alarm, once, interval) and the provider that
// fires their triggers on schedule.
//
// The feed side (Feed.Handle) validates a lifecycle call (CREATE, READ,
// UPDATE, DELETE, PAUSE, UNPAUSE) with the parameters and messages of
// OpenWhisk's alarms package (openwhisk-package-alarms, action/
// alarmWebAction.js) and keeps one document per trigger in the store, as an
// entity of kind "alarm" under the trigger's namespace and name: the
// alarm's configuration, the trigger owner's key, its status and the last
// tick fired.
//
// The provider (Provider.Run) fires the triggers. Alarms are split into a
// fixed number of shards by a hash of namespace/name; a provider fires only
// the alarms of the shards it owns, and owns a shard by holding its etcd key
// under its process lease (Shards, implemented by internal/cluster). Each
// tick is fenced in the store before it is fired: the provider advances the
// alarm's "pending" tick with a compare-and-swap on the document's revision,
// fires the trigger through the normal fire path, and then records the tick
// as done. A provider that takes a shard over finishes a pending tick
// (unless the trigger's activation record shows it fired) and fires the
// ticks missed while nobody owned the shard late, up to Config.CatchUp old.
// docs/alarms.md states the guarantees and their bounds.
package alarms
