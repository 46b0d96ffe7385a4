package api

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/eddy-faas/eddy/internal/whisk"
)

// maxSequenceLength is OpenWhisk's limits.actions.sequence.maxLength
// (GET / reports it as sequence_length).
const maxSequenceLength = 50

// maxSequenceReads bounds the reads of one sequence check, whatever the
// nesting (a sequence of 50 sequences of 50 atomic actions is already too
// long after 51 atomic ones).
const maxSequenceReads = 4 * maxSequenceLength * maxSequenceLength

// paramActions is the one parameter a sequence has: its components.
const paramActions = "_actions"

// Sequence check failures, mapped to OpenWhisk's 400s by checkSequence.
var (
	errSeqTooLong = errors.New("too long")
	errSeqCyclic  = errors.New("cyclic")
	errSeqMissing = errors.New("missing")
)

// checkSequence validates the exec of a sequence PUT for the sequence self
// (OpenWhisk's Actions.scala; docs/internals.md): every component names at least a namespace and a name;
// "_" is the caller's namespace; the caller may read every component
// (403 naming those it may not); 1 to 50 components, at most 50 atomic
// actions once nested sequences are inlined, none of them self, all
// existing. On success e.Components are rewritten to their stored form,
// "/ns/a" or "/ns/pkg/a".
func (s *server) checkSequence(ctx context.Context, caller whisk.Identity, self whisk.FQN, e *execPut) error {
	const op = "api.checkSequence"
	comps := make([]whisk.EntityName, len(e.Components))
	for i, name := range e.Components {
		q, err := whisk.ParseFullName(name)
		if err != nil {
			return err
		}
		comps[i] = q.Resolve(caller.Namespace)
	}
	if len(comps) > maxSequenceLength {
		return whisk.E(op, whisk.Invalid, whisk.MsgSequenceTooLong, nil)
	}
	if len(comps) == 0 {
		return whisk.E(op, whisk.Invalid, whisk.MsgSequenceNoComponent, nil)
	}
	// Entitlement first, as OpenWhisk's route checks it before the limits.
	var denied []string
	seen := map[whisk.EntityName]bool{}
	for _, q := range comps {
		if seen[q] {
			continue
		}
		seen[q] = true
		if _, err := s.cat.Action(ctx, caller.Namespace, q); whisk.IsKind(err, whisk.Forbidden) {
			denied = append(denied, q.Path())
		}
	}
	if len(denied) > 0 {
		sort.Strings(denied)
		return whisk.E(op, whisk.Forbidden, whisk.MsgNotAuthorized(strings.Join(denied, ", ")), nil)
	}
	reads := maxSequenceReads
	n, err := s.countAtomic(ctx, caller, self, comps, &reads)
	if err == nil && n > maxSequenceLength {
		err = errSeqTooLong
	}
	switch {
	case errors.Is(err, errSeqTooLong):
		return whisk.E(op, whisk.Invalid, whisk.MsgSequenceTooLong, nil)
	case errors.Is(err, errSeqCyclic):
		return whisk.E(op, whisk.Invalid, whisk.MsgSequenceCyclic, nil)
	case errors.Is(err, errSeqMissing):
		return whisk.E(op, whisk.Invalid, whisk.MsgSequenceComponentGone, nil)
	case err != nil:
		return err
	}
	e.Components = make([]string, len(comps))
	for i, q := range comps {
		e.Components[i] = q.String()
	}
	return nil
}

// countAtomic counts the atomic actions of comps with nested sequences
// inlined (OpenWhisk's countAtomicActionsAndCheckCycle). It stops early
// past the limit; reads bounds the lookups.
func (s *server) countAtomic(ctx context.Context, caller whisk.Identity, self whisk.FQN,
	comps []whisk.EntityName, reads *int) (int, error) {
	if len(comps) > maxSequenceLength {
		return 0, errSeqTooLong
	}
	total := 0
	for _, q := range comps {
		if *reads--; *reads < 0 {
			return 0, errSeqTooLong
		}
		ra, err := s.cat.Action(ctx, caller.Namespace, q)
		a := ra.Action
		switch {
		case whisk.IsKind(err, whisk.NotFound):
			return 0, errSeqMissing
		case whisk.IsKind(err, whisk.Forbidden):
			// A nested component the caller may not read (a direct one
			// was refused above): OpenWhisk counts it without checking.
			total++
			continue
		case err != nil:
			return 0, err
		}
		if a.FQN() == self {
			return 0, errSeqCyclic
		}
		if !a.IsSequence() {
			total++
		} else {
			inner := make([]whisk.EntityName, 0, len(a.Exec.Components))
			for _, name := range a.Exec.Components {
				iq, err := whisk.ParseFullName(name)
				if err != nil {
					return 0, errSeqMissing
				}
				inner = append(inner, iq.Resolve(caller.Namespace))
			}
			n, err := s.countAtomic(ctx, caller, self, inner, reads)
			if err != nil {
				return 0, err
			}
			total += n
		}
		if total > maxSequenceLength {
			return 0, errSeqTooLong
		}
	}
	return total, nil
}

// sequenceParams applies OpenWhisk's parameter rule for sequences: a
// sequence's parameters are always [{"_actions": components}] (the
// client's are discarded, also on an update without a new exec); an
// action that stops being a sequence keeps only the parameters given.
func sequenceParams(a, old whisk.Action, exists bool, put actionPut) whisk.Action {
	switch {
	case a.IsSequence() && (put.Exec != nil || !exists):
		v, _ := json.Marshal(a.Exec.Components)
		a.Parameters = whisk.Params{{Key: paramActions, Value: v}}
	case a.IsSequence():
		a.Parameters = old.Parameters
	case exists && old.IsSequence() && put.Parameters == nil:
		a.Parameters = whisk.Params{}
	}
	return a
}
