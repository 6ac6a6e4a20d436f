package k8s

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// want is what every overlay must deploy, with its registry.
func want(registry string) Want {
	return Want{
		Registry:    registry,
		Services:    []string{"user", "hello", "gateway"},
		MinReplicas: map[string]int32{"user": 2},
		Public:      "gateway",
		PublicPort:  "http",
	}
}

var overlays = []string{"etcd", "consul"}

func load(t *testing.T, dir string) *Objects {
	t.Helper()
	o, err := Load(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOverlays(t *testing.T) {
	for _, name := range overlays {
		t.Run(name, func(t *testing.T) {
			o := load(t, filepath.Join("overlays", name))
			if err := Check(o, want(name)); err != nil {
				t.Errorf("overlays/%s:\n%v", name, err)
			}
		})
	}
}

// TestStrictDecoding: an overlay that kustomize builds but the API server
// would reject fails Load: a misspelt field (kustomize keeps it as it is)
// and a kind the checks do not know.
func TestStrictDecoding(t *testing.T) {
	tests := []struct {
		name, extra, wantErr string
	}{
		{
			name: "unknown field",
			extra: `patches:
  - target: {kind: Deployment, name: hello}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/readinessProbe/httpGett
        value: {path: /health, port: health}
`,
			wantErr: `unknown field "spec.template.spec.containers[0].readinessProbe.httpGett"`,
		},
		{
			name: "misplaced field",
			extra: `patches:
  - target: {kind: Deployment, name: user}
    patch: |-
      - op: add
        path: /spec/template/spec/replicas
        value: 3
`,
			wantErr: `unknown field "spec.template.spec.replicas"`,
		},
		{
			name: "unknown kind",
			extra: `resources:
  - ingress.yaml
`,
			wantErr: "Ingress",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The manifests in memory, and beside them an overlay on etcd's.
			fs := filesys.MakeFsInMemory()
			for _, root := range []string{"base", "overlays"} {
				copyTree(t, fs, root)
			}
			k := "resources:\n  - ../overlays/etcd\n" + tt.extra
			k = strings.Replace(k, "resources:\n  - ingress.yaml\n", "  - ingress.yaml\n", 1)
			write(t, fs, "broken/kustomization.yaml", k)
			write(t, fs, "broken/ingress.yaml", `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: gateway}
spec:
  defaultBackend:
    service: {name: gateway, port: {number: 443}}
`)
			_, err := Load(fs, "broken")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func write(t *testing.T, fs filesys.FileSystem, name, content string) {
	t.Helper()
	if err := fs.WriteFile(name, []byte(content)); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, fs filesys.FileSystem, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return fs.WriteFile(path, b)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheckFails: each thing the starter needs, taken out of a built
// overlay, is reported.
func TestCheckFails(t *testing.T) {
	tests := []struct {
		name     string
		overlay  string
		registry string // Want's; the overlay's when empty
		breakIt  func(*Objects)
		wantErr  string
	}{
		{"no liveness probe", "etcd", "", func(o *Objects) {
			container(o, "hello").LivenessProbe = nil
		}, "Deployment/hello container hello: no livenessProbe"},
		{"probe on an undeclared port", "consul", "", func(o *Objects) {
			container(o, "gateway").ReadinessProbe.HTTPGet.Port.StrVal = "https"
		}, "readinessProbe asks port https, which the container does not declare"},
		{"exec probe", "etcd", "", func(o *Objects) {
			p := container(o, "user").ReadinessProbe
			p.HTTPGet, p.Exec = nil, &corev1.ExecAction{Command: []string{"/service", "--health_probe"}}
		}, "readinessProbe does not ask a port"},
		{"one user", "etcd", "", func(o *Objects) {
			*deployment(o, "user").Spec.Replicas = 1
		}, "Deployment/user: replicas 1, want at least 2"},
		{"no PDB for user", "etcd", "", func(o *Objects) {
			o.PDBs = slices.DeleteFunc(o.PDBs, func(p *policyv1.PodDisruptionBudget) bool { return p.Name == "user" })
		}, "Deployment/user: no PodDisruptionBudget selects its pods"},
		{"no PDB for the etcd members", "etcd", "", func(o *Objects) {
			o.PDBs = slices.DeleteFunc(o.PDBs, func(p *policyv1.PodDisruptionBudget) bool { return p.Name == "etcd" })
		}, "StatefulSet/etcd: no PodDisruptionBudget selects its pods"},
		{"no NetworkPolicy", "consul", "", func(o *Objects) {
			o.NetworkPolicies = nil
		}, "Deployment/hello: no NetworkPolicy with Ingress selects its pods"},
		{"RPC from anyone", "etcd", "", func(o *Objects) {
			policy(o, "micro-services").Spec.Ingress[0].From = nil
		}, "NetworkPolicy micro-services admits RPC (9090) from anyone"},
		{"RPC from every pod", "consul", "", func(o *Objects) {
			policy(o, "micro-services").Spec.Ingress[0].From[0].PodSelector = &metav1.LabelSelector{}
		}, "NetworkPolicy micro-services admits RPC (9090) from pods other than the services'"},
		{"RPC from the registry's pods", "etcd", "", func(o *Objects) {
			policy(o, "micro-services").Spec.Ingress[0].From[0].PodSelector = &metav1.LabelSelector{
				MatchLabels: map[string]string{"app.kubernetes.io/name": "etcd"}}
		}, "NetworkPolicy micro-services admits RPC (9090) from pods other than the services'"},
		{"RPC from every pod of the starter", "consul", "", func(o *Objects) {
			policy(o, "micro-services").Spec.Ingress[0].From[0].PodSelector = &metav1.LabelSelector{
				MatchLabels: map[string]string{"app.kubernetes.io/part-of": "micro-starter"}}
		}, "NetworkPolicy micro-services admits RPC (9090) from pods other than the services'"},
		{"gateway closed", "etcd", "", func(o *Objects) {
			o.NetworkPolicies = slices.DeleteFunc(o.NetworkPolicies, func(p *networkingv1.NetworkPolicy) bool { return p.Name == "gateway-public" })
		}, "Deployment/gateway: no NetworkPolicy admits port http from outside"},
		{"no Service for the gateway", "etcd", "", func(o *Objects) {
			o.Services = slices.DeleteFunc(o.Services, func(s *corev1.Service) bool { return s.Name == "gateway" })
		}, "Deployment/gateway: no Service selects its pods"},
		{"root", "consul", "", func(o *Objects) {
			uid := int64(0)
			deployment(o, "user").Spec.Template.Spec.SecurityContext.RunAsUser = &uid
		}, "container user: runAsUser 0, want 65534"},
		{"writable root", "etcd", "", func(o *Objects) {
			f := false
			container(o, "hello").SecurityContext.ReadOnlyRootFilesystem = &f
		}, "readOnlyRootFilesystem is not true"},
		{"no limits", "etcd", "", func(o *Objects) {
			container(o, "hello").Resources.Limits = nil
		}, "container hello: no memory limit"},
		{"a Deployment that is not a service", "consul", "", func(o *Objects) {
			d := deployment(o, "hello").DeepCopy()
			d.Name = "orders"
			d.Spec.Template.Spec.Containers[0].Image = "orders:latest"
			o.Deployments = append(o.Deployments, d)
		}, `Deployment/orders: image "orders:latest", want "micro-starter/orders:dev"`},
		{"another image", "etcd", "", func(o *Objects) {
			container(o, "hello").Image = "hello:latest"
		}, `image "hello:latest", want "micro-starter/hello:dev"`},
		{"certificates not from a Secret", "etcd", "", func(o *Objects) {
			d := deployment(o, "hello")
			d.Spec.Template.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		}, "MICRO_TLS_CA=/certs/ca.crt: volume tls is not a Secret"},
		{"certificates not mounted", "etcd", "", func(o *Objects) {
			container(o, "gateway").VolumeMounts = nil
		}, "HTTP_TLS_CERT=/https/tls.crt: no volume mounted there"},
		{"another service's credentials", "consul", "", func(o *Objects) {
			env(o, "hello", "MICRO_REGISTRY_TOKEN").ValueFrom.SecretKeyRef.Name = "user-registry"
		}, "MICRO_REGISTRY_TOKEN from Secret user-registry, not one of hello's own"},
		{"advertising every interface", "etcd", "", func(o *Objects) {
			env(o, "user", "MICRO_SERVER_ADDRESS").Value = ":9090"
		}, `MICRO_SERVER_ADDRESS ":9090", want "$(POD_IP):9090"`},
		{"a variable used before it is defined", "consul", "", func(o *Objects) {
			c := container(o, "user")
			i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "HOST_IP" })
			c.Env = append(c.Env[:i], append(c.Env[i+1:], c.Env[i])...)
		}, "env MICRO_REGISTRY_ADDRESS refers to $(HOST_IP), not defined before it"},
		{"wrong registry", "consul", "etcd", func(*Objects) {}, `MICRO_REGISTRY "consul", want "etcd"`},
		{"etcd member missing from the address", "etcd", "", func(o *Objects) {
			env(o, "hello", "MICRO_REGISTRY_ADDRESS").Value = "etcd-0.etcd:2379,etcd-1.etcd:2379"
		}, "Deployment/hello: MICRO_REGISTRY_ADDRESS \"etcd-0.etcd:2379,etcd-1.etcd:2379\", want every member"},
		{"one etcd member", "etcd", "", func(o *Objects) {
			*o.StatefulSets[0].Spec.Replicas = 1
		}, "StatefulSet/etcd: replicas 1, want 3"},
		{"etcd members unnamed", "etcd", "", func(o *Objects) {
			o.Services = slices.DeleteFunc(o.Services, func(s *corev1.Service) bool { return s.Name == "etcd" })
		}, `StatefulSet/etcd: no Service "etcd"`},
		{"Consul server straight", "consul", "", func(o *Objects) {
			env(o, "user", "MICRO_REGISTRY_ADDRESS").Value = "consul-server:8500"
		}, `Deployment/user: MICRO_REGISTRY_ADDRESS "consul-server:8500", want the node's agent "$(HOST_IP):8500"`},
		{"no Consul agent", "consul", "", func(o *Objects) {
			o.DaemonSets[0].Spec.Template.Spec.Containers[0].Ports[0].HostPort = 0
		}, "consul: no DaemonSet with the agent's HTTP port 8500"},
		{"Consul's check blocked", "consul", "", func(o *Objects) {
			o.NetworkPolicies = slices.DeleteFunc(o.NetworkPolicies, func(p *networkingv1.NetworkPolicy) bool { return p.Name == "micro-services-consul-checks" })
		}, "no NetworkPolicy admits the Consul agent's check to port health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := load(t, filepath.Join("overlays", tt.overlay))
			registry := tt.registry
			if registry == "" {
				registry = tt.overlay
			}
			tt.breakIt(o)
			err := Check(o, want(registry))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check: %v\nwant an error with %q", err, tt.wantErr)
			}
		})
	}
}

func deployment(o *Objects, name string) *appsv1.Deployment {
	for _, d := range o.Deployments {
		if d.Name == name {
			return d
		}
	}
	panic("no Deployment " + name)
}

func container(o *Objects, name string) *corev1.Container {
	return &deployment(o, name).Spec.Template.Spec.Containers[0]
}

func env(o *Objects, service, name string) *corev1.EnvVar {
	c := container(o, service)
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	panic("no env " + name + " in " + service)
}

func policy(o *Objects, name string) *networkingv1.NetworkPolicy {
	for _, p := range o.NetworkPolicies {
		if p.Name == name {
			return p
		}
	}
	panic("no NetworkPolicy " + name)
}
