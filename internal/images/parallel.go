package images

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// buildAll builds opts.Families: the families that share a root file
// system (python and skeleton) one after the other, in Families order, and
// those groups in parallel, up to opts.Parallel at once. debootstrap
// spends much of its time waiting on the mirror and on dpkg's fsyncs, so
// that a fresh build of every family takes about the time of its slowest
// ones rather than their sum. A failed group does not stop the others;
// every error is returned.
func (b *builder) buildAll(ctx context.Context) error {
	var groups [][]string
	index := map[string]int{}
	for _, f := range Families {
		if !slices.Contains(b.opts.Families, f) {
			continue
		}
		key := f
		if s, ok := rootfsSpecs[f]; ok {
			key = s.rootfsName()
		}
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], f)
	}
	n := b.opts.Parallel
	if n <= 0 {
		n = 3
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	errs := make([]error, len(groups))
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, f := range g {
				if err := b.family(ctx, f); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
