package api

import (
	"context"

	"github.com/eddy-faas/eddy/internal/store"
	"github.com/eddy-faas/eddy/internal/whisk"
)

// EntityStore is what StoreAPIDocs needs of the store (store.Store has it).
type EntityStore interface {
	GetEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string) (whisk.Entity, error)
	PutEntity(ctx context.Context, e whisk.Entity, expectRev int64) (whisk.Entity, error)
	DeleteEntity(ctx context.Context, kind whisk.EntityKind, namespace, name string, expectRev int64) (whisk.Entity, error)
	ListEntities(ctx context.Context, kind whisk.EntityKind, namespace string, f store.EntityFilter) ([]whisk.Entity, error)
}

// StoreAPIDocs keeps the API gateway's documents in the store as entities
// of kind api named by their base path: they survive restarts and every
// controller of a cluster reads the same ones.
func StoreAPIDocs(st EntityStore) APIDocs { return entityAPIDocs{st} }

type entityAPIDocs struct{ st EntityStore }

func (d entityAPIDocs) GetAPI(ctx context.Context, ns, basePath string) ([]byte, int64, error) {
	e, err := d.st.GetEntity(ctx, whisk.EntityAPI, ns, basePath)
	if err != nil {
		return nil, 0, err
	}
	return e.Doc, e.Rev, nil
}

func (d entityAPIDocs) PutAPI(ctx context.Context, ns, basePath string, doc []byte, expectRev int64) error {
	_, err := d.st.PutEntity(ctx, whisk.Entity{Kind: whisk.EntityAPI, Namespace: ns, Name: basePath, Doc: doc}, expectRev)
	return err
}

func (d entityAPIDocs) DeleteAPI(ctx context.Context, ns, basePath string, expectRev int64) error {
	_, err := d.st.DeleteEntity(ctx, whisk.EntityAPI, ns, basePath, expectRev)
	return err
}

func (d entityAPIDocs) ListAPIs(ctx context.Context, ns string) ([][]byte, error) {
	es, err := d.st.ListEntities(ctx, whisk.EntityAPI, ns, store.EntityFilter{})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.Doc
	}
	return out, nil
}
