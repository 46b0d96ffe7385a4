package whisk

import "fmt"

// SystemLimits are the operator's bounds on action limits and payloads.
type SystemLimits struct {
	MinTimeout, MaxTimeout, DefaultTimeout int64 // ms
	MinMemory, MaxMemory, DefaultMemory    int64 // MB
	MinLogs, MaxLogs, DefaultLogs          int64 // MB
	MaxConcurrency                         int   // intra-container
	MaxPayload                             int64 // bytes, invoke body and parameters
	MaxResult                              int64 // bytes
	MaxCode                                int64 // bytes
	InvocationsPerMinute                   int   // per namespace, default
	ConcurrentContainers                   int   // per namespace, default
	FiresPerMinute                         int   // trigger fires per namespace, default
	MaxBlockingWait                        int64 // ms
}

// DefaultSystemLimits are Eddy's defaults (BRIEF §6).
func DefaultSystemLimits() SystemLimits {
	return SystemLimits{
		MinTimeout: 100, MaxTimeout: 300000, DefaultTimeout: 60000,
		MinMemory: 128, MaxMemory: 512, DefaultMemory: 256,
		MinLogs: 0, MaxLogs: 10, DefaultLogs: 10,
		MaxConcurrency:       1,
		MaxPayload:           1 << 20,
		MaxResult:            1 << 20,
		MaxCode:              48 << 20,
		InvocationsPerMinute: 1200,
		ConcurrentContainers: 100,
		FiresPerMinute:       60,
		MaxBlockingWait:      60000,
	}
}

// Defaults returns the default action limits.
func (s SystemLimits) Defaults() Limits {
	return Limits{Timeout: s.DefaultTimeout, Memory: s.DefaultMemory, Logs: s.DefaultLogs, Concurrency: 1}
}

// Check validates l against the bounds with OpenWhisk's messages; the error
// has kind Invalid.
func (s SystemLimits) Check(l Limits) error {
	switch {
	case l.Timeout < s.MinTimeout:
		return Errorf(Invalid, "timeout %d milliseconds below allowed threshold of %d milliseconds", l.Timeout, s.MinTimeout)
	case l.Timeout > s.MaxTimeout:
		return Errorf(Invalid, "timeout %d milliseconds exceeds allowed threshold of %d milliseconds", l.Timeout, s.MaxTimeout)
	case l.Memory < s.MinMemory:
		return Errorf(Invalid, "memory %d MB below allowed threshold of %d MB", l.Memory, s.MinMemory)
	case l.Memory > s.MaxMemory:
		return Errorf(Invalid, "memory %d MB exceeds allowed threshold of %d MB", l.Memory, s.MaxMemory)
	case l.Logs < s.MinLogs:
		return Errorf(Invalid, "logs %d MB below allowed threshold of %d MB", l.Logs, s.MinLogs)
	case l.Logs > s.MaxLogs:
		return Errorf(Invalid, "logs %d MB exceeds allowed threshold of %d MB", l.Logs, s.MaxLogs)
	case l.Concurrency < 1:
		return Errorf(Invalid, "concurrency %d below allowed threshold of 1", l.Concurrency)
	case l.Concurrency > s.MaxConcurrency:
		return Errorf(Invalid, "concurrency %d exceeds allowed threshold of %d", l.Concurrency, s.MaxConcurrency)
	case l.Instances < 0:
		return Errorf(Invalid, "instances %d below allowed threshold of 0", l.Instances)
	}
	return nil
}

// String is for logs.
func (l Limits) String() string {
	return fmt.Sprintf("timeout=%dms memory=%dMB logs=%dMB concurrency=%d", l.Timeout, l.Memory, l.Logs, l.Concurrency)
}
