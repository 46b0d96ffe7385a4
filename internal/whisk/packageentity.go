package whisk

import (
	"encoding/json"
	"fmt"
)

// PackageFromEntity decodes a stored package entity; the entity's
// namespace, name, publish flag, revision and update time win over the
// document's.
func PackageFromEntity(e Entity) (Package, error) {
	var p Package
	if err := json.Unmarshal(e.Doc, &p); err != nil {
		return Package{}, E("whisk.PackageFromEntity", Internal, "", fmt.Errorf("package %s/%s: %w", e.Namespace, e.Name, err))
	}
	p.Namespace, p.Name, p.Rev, p.Updated = e.Namespace, e.Name, e.Rev, e.Updated
	if p.Parameters == nil {
		p.Parameters = Params{}
	}
	if p.Annotations == nil {
		p.Annotations = Params{}
	}
	return p, nil
}

// Entity returns p as a stored entity (Rev and Updated are the store's).
func (p *Package) Entity() (Entity, error) {
	doc, err := json.Marshal(p)
	if err != nil {
		return Entity{}, E("whisk.Package.Entity", Internal, "", err)
	}
	// A binding is never listed for other namespaces (docs/packages.md).
	return Entity{Kind: EntityPackage, Namespace: p.Namespace, Name: p.Name, Publish: p.Publish && !p.IsBinding(), Doc: doc}, nil
}
