// Package k8s checks the Kubernetes manifests in this folder without a
// cluster: each overlay is built with kustomize's Go API (krusty), every
// object is decoded strictly into the API types of k8s.io/api (an unknown
// or duplicated field is an error, as the API server would reject it), and
// then checked for what the starter needs to run (Check).
//
// It is a module of its own so that the services' go.mod does not carry
// kustomize's dependencies.
package k8s

import (
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Objects are the objects an overlay builds, by kind. Only these kinds may
// appear: anything else is reported by Load, so that no object goes
// unchecked.
type Objects struct {
	Deployments     []*appsv1.Deployment
	StatefulSets    []*appsv1.StatefulSet
	DaemonSets      []*appsv1.DaemonSet
	Services        []*corev1.Service
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
}

// Load builds the kustomization in dir (on fsys) and decodes every object.
func Load(fsys filesys.FileSystem, dir string) (*Objects, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("k8s.Load: kustomize build %s: %w", dir, err)
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("k8s.Load: %s: %w", r.CurId(), err)
		}
		docs = append(docs, y)
	}
	o, err := Decode(docs)
	if err != nil {
		return nil, fmt.Errorf("k8s.Load %s: %w", dir, err)
	}
	return o, nil
}

// Decode decodes each YAML document strictly into its API type.
func Decode(docs [][]byte) (*Objects, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("k8s.Decode: scheme: %w", err)
		}
	}
	s := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	o := &Objects{}
	var errs []error
	for _, doc := range docs {
		obj, gvk, err := s.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("decode %s: %w", describe(doc), err))
			continue
		}
		switch v := obj.(type) {
		case *appsv1.Deployment:
			o.Deployments = append(o.Deployments, v)
		case *appsv1.StatefulSet:
			o.StatefulSets = append(o.StatefulSets, v)
		case *appsv1.DaemonSet:
			o.DaemonSets = append(o.DaemonSets, v)
		case *corev1.Service:
			o.Services = append(o.Services, v)
		case *policyv1.PodDisruptionBudget:
			o.PDBs = append(o.PDBs, v)
		case *networkingv1.NetworkPolicy:
			o.NetworkPolicies = append(o.NetworkPolicies, v)
		default:
			errs = append(errs, fmt.Errorf("%s %s: a kind Check does not know", gvk.Kind, describe(doc)))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o, nil
}

// describe names a document in an error: its first line of metadata is
// enough to find it, and the document may not decode at all.
func describe(doc []byte) string {
	var meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil || meta.Kind == "" {
		return "object"
	}
	return meta.Kind + "/" + meta.Metadata.Name
}
