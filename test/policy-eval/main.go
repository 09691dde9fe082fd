// Command policy-eval admits pods the way kube-apiserver does in policy mode,
// with Kubernetes' own admission code (k8s.io/apiserver, pinned in go.mod): the MutatingAdmissionPolicy and
// ValidatingAdmissionPolicy plugins, fed their policies and bindings through
// informers, behind the admission chain's reinvocation. It also applies the
// webhook's JSON patch to the same pod with the library the API server uses
// for webhook patches, so both modes' pods come out through the same types.
//
// Input (stdin, JSON):
//
//	{"objects": [policies and bindings], "namespaces": [Namespace],
//	 "cases": [{"namespace": "ns", "pod": Pod, "webhookPatch": [ops]}]}
//
// Output (stdout, JSON): {"results": [{"pod", "error", "warnings", "webhook", "webhookError"}]}.
// A policy that does not compile fails the pods it matches, as on the API server.
//
// With -normalize: {"pods": [Pod]} in, the same pods out as the API server encodes them in
// an AdmissionReview (through the Go types: empty lists and unknown fields gone), which is
// what a webhook computes its patch against.
//
// With -objects: ValidatingAdmissionPolicies on objects of any kind, custom resources
// included, as the API server holds them (unstructured), created or updated, through the
// same validating plugin (runObjects, below).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	celtypes "github.com/google/cel-go/common/types"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/cel/environment"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/dynamic"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/openapi"
	"k8s.io/client-go/openapi/openapitest"
	"k8s.io/component-base/metrics/legacyregistry"
)

type input struct {
	Objects    []json.RawMessage `json:"objects"`
	Namespaces []json.RawMessage `json:"namespaces"`
	Cases      []caseIn          `json:"cases"`
}

type caseIn struct {
	Namespace    string          `json:"namespace"`
	Pod          json.RawMessage `json:"pod"`
	WebhookPatch json.RawMessage `json:"webhookPatch,omitempty"`
}

type caseOut struct {
	// Mutations the MutatingAdmissionPolicy plugin ran for the pod (its own apiserver_mutating_admission_policy_check_total).
	PolicyMutations int         `json:"policyMutations"`
	Pod             *corev1.Pod `json:"pod,omitempty"`
	Error           string      `json:"error,omitempty"`
	Warnings        []string    `json:"warnings"`
	Webhook         *corev1.Pod `json:"webhook,omitempty"`
	WebhookError    string      `json:"webhookError,omitempty"`
}

var (
	podGVK = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	podGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

// strict decodes like the API server with fieldValidation=Strict: an unknown field is an error.
func strict(raw json.RawMessage, into any, what string) error {
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.DisallowUnknownFields()
	if err := d.Decode(into); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func decodeObject(raw json.RawMessage, i int) (runtime.Object, error) {
	var head metav1.TypeMeta
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("objects[%d]: %w", i, err)
	}
	var obj runtime.Object
	switch head.Kind {
	case "MutatingAdmissionPolicy":
		obj = &admissionregistrationv1.MutatingAdmissionPolicy{}
	case "MutatingAdmissionPolicyBinding":
		obj = &admissionregistrationv1.MutatingAdmissionPolicyBinding{}
	case "ValidatingAdmissionPolicy":
		obj = &admissionregistrationv1.ValidatingAdmissionPolicy{}
	case "ValidatingAdmissionPolicyBinding":
		obj = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	default:
		return nil, fmt.Errorf("objects[%d]: kind %q is not an admission policy or binding", i, head.Kind)
	}
	if head.APIVersion != "admissionregistration.k8s.io/v1" {
		return nil, fmt.Errorf("objects[%d] (%s): apiVersion %q: this harness serves admissionregistration.k8s.io/v1", i, head.Kind, head.APIVersion)
	}
	if err := strict(raw, obj, fmt.Sprintf("objects[%d] (%s)", i, head.Kind)); err != nil {
		return nil, err
	}
	setDefaults(obj)
	return obj, nil
}

// setDefaults is what kube-apiserver does to a policy or binding before storing it:
// k8s.io/kubernetes/pkg/apis/admissionregistration/v1/defaults.go and its generated
// zz_generated.defaults.go (k8s.io/kubernetes is not in Debian, so written from them).
// Without it the plugins refuse a nil namespaceSelector.
func setDefaults(obj runtime.Object) {
	fail := admissionregistrationv1.Fail
	switch o := obj.(type) {
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		if o.Spec.FailurePolicy == nil {
			o.Spec.FailurePolicy = &fail
		}
		defaultMatchResources(o.Spec.MatchConstraints)
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		defaultMatchResources(o.Spec.MatchResources)
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		if o.Spec.FailurePolicy == nil {
			o.Spec.FailurePolicy = &fail
		}
		defaultMatchResources(o.Spec.MatchConstraints)
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		defaultMatchResources(o.Spec.MatchResources)
	}
}

func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m == nil {
		return
	}
	if m.MatchPolicy == nil {
		equivalent := admissionregistrationv1.Equivalent
		m.MatchPolicy = &equivalent
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			if rules[i].Scope == nil {
				all := admissionregistrationv1.AllScopes
				rules[i].Scope = &all
			}
		}
	}
}

// The fake clientset's discovery has no OpenAPI (it panics). The mutating plugin wants a
// schema for the kind it patches; it reads it only for ApplyConfiguration patches, which
// our policies do not use, so client-go's own test copy of the core/v1 schema serves.
type clientset struct{ *fake.Clientset }
type discoveryWithOpenAPI struct{ *fakediscovery.FakeDiscovery }

func (c clientset) Discovery() discovery.DiscoveryInterface {
	return discoveryWithOpenAPI{c.Clientset.Discovery().(*fakediscovery.FakeDiscovery)}
}
func (discoveryWithOpenAPI) OpenAPIV3() openapi.Client { return openapitest.NewEmbeddedFileClient() }

// policyPlugin is what both policy plugins take from kube-apiserver's plugin initializers.
type policyPlugin interface {
	SetExternalKubeClientSet(kubernetes.Interface)
	SetExternalKubeInformerFactory(informers.SharedInformerFactory)
	SetRESTMapper(meta.RESTMapper)
	SetDynamicClient(dynamic.Interface)
	SetDrainedNotification(<-chan struct{})
	SetAuthorizer(authorizer.Authorizer)
	ValidateInitialization() error
}

type recorder struct{ warnings []string }

func (r *recorder) AddWarning(agent, text string) { r.warnings = append(r.warnings, text) }

// The ServiceAccount admission plugin lives in k8s.io/kubernetes, which Debian does not
// package. The cases are pods as mutating policies and webhooks see them, after its first
// pass; what it does again when the chain is reinvoked is to mount the `kube-api-access-*`
// volume, readOnly, at the token path in every container and init container without a
// mount there (plugin/pkg/admission/serviceaccount/admission.go, mountServiceAccountToken).
type serviceAccountMounts struct{}

const tokenPath = "/var/run/secrets/kubernetes.io/serviceaccount"

func (serviceAccountMounts) Handles(admission.Operation) bool { return true }
func (serviceAccountMounts) Admit(_ context.Context, a admission.Attributes, _ admission.ObjectInterfaces) error {
	pod, ok := a.GetObject().(*corev1.Pod)
	if !ok || !a.GetReinvocationContext().IsReinvoke() {
		return nil
	}
	mountTokenVolume(pod)
	return nil
}

func mountTokenVolume(pod *corev1.Pod) {
	if pod.Spec.AutomountServiceAccountToken != nil && !*pod.Spec.AutomountServiceAccountToken {
		return
	}
	volume := ""
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "kube-api-access-") {
			volume = v.Name
			break
		}
	}
	if volume == "" {
		return
	}
	mount := func(cs []corev1.Container) {
		for i := range cs {
			has := false
			for _, m := range cs[i].VolumeMounts {
				has = has || m.MountPath == tokenPath
			}
			if !has {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: volume, ReadOnly: true, MountPath: tokenPath})
			}
		}
	}
	mount(pod.Spec.InitContainers)
	mount(pod.Spec.Containers)
}

func run(in input) ([]caseOut, error) {
	var objects []runtime.Object
	for i, raw := range in.Namespaces {
		ns := &corev1.Namespace{}
		if err := strict(raw, ns, fmt.Sprintf("namespaces[%d]", i)); err != nil {
			return nil, err
		}
		objects = append(objects, ns)
	}
	for i, raw := range in.Objects {
		obj, err := decodeObject(raw, i)
		if err != nil {
			return nil, err
		}
		objects = append(objects, obj)
	}

	client := clientset{fake.NewSimpleClientset(objects...)}
	factory := informers.NewSharedInformerFactory(client, 0)
	stop := make(chan struct{})
	defer close(stop)
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{podGVK.GroupVersion()})
	mapper.Add(podGVK, meta.RESTScopeNamespace)

	mutator, err := mutating.NewPlugin(nil)
	if err != nil {
		return nil, err
	}
	validator, err := validating.NewPlugin(nil)
	if err != nil {
		return nil, err
	}
	// As kube-apiserver does: enabled by the feature gate (on by default in 1.36).
	mutator.InspectFeatureGates(utilfeature.DefaultFeatureGate)
	dynamicClient := fakedynamic.NewSimpleDynamicClient(runtime.NewScheme())
	authz := authorizerfactory.NewAlwaysAllowAuthorizer()
	// What kube-apiserver's plugin initializers hand them.
	for name, p := range map[string]policyPlugin{"MutatingAdmissionPolicy": mutator, "ValidatingAdmissionPolicy": validator} {
		p.SetExternalKubeClientSet(client)
		p.SetExternalKubeInformerFactory(factory)
		p.SetRESTMapper(mapper)
		p.SetDynamicClient(dynamicClient)
		p.SetDrainedNotification(stop)
		p.SetAuthorizer(authz)
		if err := p.ValidateInitialization(); err != nil {
			return nil, fmt.Errorf("%s plugin: %w", name, err)
		}
	}
	factory.Start(stop)
	if !mutator.WaitForReady() || !validator.WaitForReady() {
		return nil, errors.New("the policy plugins did not become ready (informers not synced)")
	}

	chain := admission.NewChainHandler(serviceAccountMounts{}, mutator)
	interfaces := admission.NewObjectInterfacesFromScheme(clientgoscheme.Scheme)

	out := make([]caseOut, len(in.Cases))
	for i, c := range in.Cases {
		where := fmt.Sprintf("cases[%d]", i)
		pod := &corev1.Pod{}
		if err := strict(c.Pod, pod, where+".pod"); err != nil {
			return nil, err
		}
		pod.Namespace = c.Namespace
		webhookInput := pod.DeepCopy()

		res := caseOut{Warnings: []string{}}
		before := policyChecks()
		stored, warnings, err := admit(pod.DeepCopy(), chain, validator, interfaces)
		// The mutating plugin loads the kind's schema in the background after it starts
		// (patch/typeconverter.go); until then it answers 503 for that kind, which is a wait, not a result.
		for deadline := time.Now().Add(60 * time.Second); err != nil && strings.Contains(err.Error(), "Resource kind /v1, Kind=Pod not found") && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			before = policyChecks()
			stored, warnings, err = admit(pod.DeepCopy(), chain, validator, interfaces)
		}
		res.PolicyMutations = policyChecks() - before
		if err != nil {
			res.Error = err.Error()
		} else {
			res.Pod = stored
		}
		res.Warnings = append(res.Warnings, warnings...)

		if len(c.WebhookPatch) > 0 {
			res.Webhook, err = applyWebhookPatch(webhookInput, c.WebhookPatch)
			if err != nil {
				res.WebhookError = err.Error()
			}
		}
		out[i] = res
	}
	return out, nil
}

// policyChecks reads the mutating policy plugin's own counter of mutations run, all policies summed.
func policyChecks() int {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		panic(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() == "apiserver_mutating_admission_policy_check_total" {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int(sum)
}

var requester = &user.DefaultInfo{Name: "system:serviceaccount:kube-system:replicaset-controller", Groups: []string{"system:serviceaccounts", "system:authenticated"}}

// admit is a pod CREATE through the admission chain: the mutating plugins once, and again
// if one asked for it (admission/reinvocation.go), then the validating policies.
func admit(pod *corev1.Pod, chain admission.MutationInterface, validator admission.ValidationInterface, interfaces admission.ObjectInterfaces) (*corev1.Pod, []string, error) {
	rec := &recorder{}
	ctx := warning.WithWarningRecorder(context.Background(), rec)
	attrs := admission.NewAttributesRecord(pod, nil, podGVK, pod.Namespace, pod.Name, podGVR, "", admission.Create, &metav1.CreateOptions{}, false, requester)
	err := chain.Admit(ctx, attrs, interfaces)
	if err == nil && attrs.GetReinvocationContext().ShouldReinvoke() {
		attrs.GetReinvocationContext().SetIsReinvoke()
		err = chain.Admit(ctx, attrs, interfaces)
	}
	if err == nil {
		err = validator.Validate(ctx, attrs, interfaces)
	}
	if err != nil {
		return nil, rec.warnings, err
	}
	stored := attrs.GetObject().(*corev1.Pod)
	// A patched object is decoded afresh, without its TypeMeta; the API server sets it on output.
	stored.APIVersion, stored.Kind = "v1", "Pod"
	return stored, rec.warnings, nil
}

// applyWebhookPatch is the webhook path: the patch applied by the API server's library and call
// (json-patch.v4's DecodePatch and Apply, as admission/plugin/webhook/mutating/dispatcher.go does), decoded into the Pod type, then, if
// the patch changed anything, the ServiceAccount plugin's pass on reinvocation.
func applyWebhookPatch(pod *corev1.Pod, ops json.RawMessage) (*corev1.Pod, error) {
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return nil, fmt.Errorf("decoding the webhook's patch: %w", err)
	}
	doc, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	patched, err := patch.Apply(doc)
	if err != nil {
		return nil, fmt.Errorf("applying the webhook's patch: %w", err)
	}
	next := &corev1.Pod{}
	if err := json.Unmarshal(patched, next); err != nil {
		return nil, fmt.Errorf("decoding the patched pod: %w", err)
	}
	if len(patch) > 0 {
		mountTokenVolume(next)
	}
	return next, nil
}

func normalize(raw []byte) (map[string]any, error) {
	var in struct {
		Pods []json.RawMessage `json:"pods"`
	}
	if err := strict(raw, &in, "input"); err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, len(in.Pods))
	for i, p := range in.Pods {
		pods[i] = &corev1.Pod{}
		if err := strict(p, pods[i], fmt.Sprintf("pods[%d]", i)); err != nil {
			return nil, err
		}
	}
	return map[string]any{"pods": pods}, nil
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "policy-eval: reading stdin:", err)
		os.Exit(2)
	}
	var out map[string]any
	if len(os.Args) > 1 && os.Args[1] == "-normalize" {
		out, err = normalize(raw)
	} else if len(os.Args) > 1 && os.Args[1] == "-objects" {
		var in objectsInput
		if err = strict(raw, &in, "input"); err == nil {
			out, err = runObjects(in)
		}
	} else {
		var in input
		if err = strict(raw, &in, "input"); err == nil {
			var results []caseOut
			results, err = run(in)
			out = map[string]any{"results": results}
		}
	}
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "policy-eval:", err)
		os.Exit(1)
	}
}

// -objects: {"objects": [policies and bindings], "namespaces": [Namespace],
// "resource": {"group", "version", "resource", "kind"},
// "cases": [{"operation": "CREATE"|"UPDATE", "namespace", "object", "oldObject"}],
// "compileAs": "1.29"} in; {"results": [{"allowed", "message", "code", "reason", "warnings",
// "cost"}], "compileErrors": [...]} out.
type objectsInput struct {
	Objects    []json.RawMessage `json:"objects"`
	Namespaces []json.RawMessage `json:"namespaces"`
	Resource   struct {
		Group    string `json:"group"`
		Version  string `json:"version"`
		Resource string `json:"resource"`
		Kind     string `json:"kind"`
	} `json:"resource"`
	Cases []objectCase `json:"cases"`
	// CompileAs: every expression of the ValidatingAdmissionPolicies compiled again as a new
	// expression in the CEL environment of this compatibility version, as kube-apiserver
	// validates a policy it is sent (1.30 compiles new expressions as 1.29).
	CompileAs string `json:"compileAs,omitempty"`
}

type objectCase struct {
	Operation string          `json:"operation"`
	Namespace string          `json:"namespace"`
	Object    json.RawMessage `json:"object"`
	OldObject json.RawMessage `json:"oldObject,omitempty"`
}

type objectResult struct {
	Allowed bool `json:"allowed"`
	// The refusal as the API server answers it: the Status message, code and reason.
	Message  string   `json:"message,omitempty"`
	Code     int32    `json:"code,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Warnings []string `json:"warnings"`
	// Per ValidatingAdmissionPolicy: the runtime CEL cost of its validations and their messages, as the
	// plugin charges it against celconfig.RuntimeCELCostBudget (one budget for both), and the largest
	// cost of one variable (each limited to celconfig.PerCallLimit), for the policies whose
	// matchConditions hold.
	Cost map[string]policyCost `json:"cost,omitempty"`
}

type policyCost struct {
	Total       int64  `json:"total"`
	MaxVariable int64  `json:"maxVariable"`
	Variable    string `json:"variable"`
	// Each variable's cost, with what it reads.
	Variables map[string]int64 `json:"variables"`
	// Where an evaluation failed (a limit exceeded): its error, and the costs up to it.
	Error string `json:"error,omitempty"`
}

func runObjects(in objectsInput) (map[string]any, error) {
	gvk := schema.GroupVersionKind{Group: in.Resource.Group, Version: in.Resource.Version, Kind: in.Resource.Kind}
	gvr := schema.GroupVersionResource{Group: in.Resource.Group, Version: in.Resource.Version, Resource: in.Resource.Resource}
	var objects []runtime.Object
	namespaces := map[string]*corev1.Namespace{}
	for i, raw := range in.Namespaces {
		ns := &corev1.Namespace{}
		if err := strict(raw, ns, fmt.Sprintf("namespaces[%d]", i)); err != nil {
			return nil, err
		}
		namespaces[ns.Name] = ns
		objects = append(objects, ns)
	}
	var policies []*admissionregistrationv1.ValidatingAdmissionPolicy
	for i, raw := range in.Objects {
		obj, err := decodeObject(raw, i)
		if err != nil {
			return nil, err
		}
		if p, ok := obj.(*admissionregistrationv1.ValidatingAdmissionPolicy); ok {
			policies = append(policies, p)
		}
		objects = append(objects, obj)
	}
	var compileErrors []string
	if in.CompileAs != "" {
		v, err := version.ParseMajorMinor(in.CompileAs)
		if err != nil {
			return nil, fmt.Errorf("compileAs: %w", err)
		}
		for _, p := range policies {
			compileErrors = append(compileErrors, compileAsNew(p, v)...)
		}
	}

	client := clientset{fake.NewSimpleClientset(objects...)}
	factory := informers.NewSharedInformerFactory(client, 0)
	stop := make(chan struct{})
	defer close(stop)
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{gvk.GroupVersion()})
	mapper.Add(gvk, meta.RESTScopeNamespace)
	validator, err := validating.NewPlugin(nil)
	if err != nil {
		return nil, err
	}
	authz := authorizerfactory.NewAlwaysAllowAuthorizer()
	var p policyPlugin = validator
	p.SetExternalKubeClientSet(client)
	p.SetExternalKubeInformerFactory(factory)
	p.SetRESTMapper(mapper)
	p.SetDynamicClient(fakedynamic.NewSimpleDynamicClient(runtime.NewScheme()))
	p.SetDrainedNotification(stop)
	p.SetAuthorizer(authz)
	if err := p.ValidateInitialization(); err != nil {
		return nil, fmt.Errorf("ValidatingAdmissionPolicy plugin: %w", err)
	}
	factory.Start(stop)
	if !validator.WaitForReady() {
		return nil, errors.New("the policy plugin did not become ready (informers not synced)")
	}
	interfaces := admission.NewObjectInterfacesFromScheme(clientgoscheme.Scheme)
	meters := make([]*costMeter, len(policies))
	for i, pol := range policies {
		if meters[i], err = newCostMeter(pol); err != nil {
			return nil, fmt.Errorf("cost of %s: %w", pol.Name, err)
		}
	}

	results := make([]objectResult, len(in.Cases))
	for i, c := range in.Cases {
		where := fmt.Sprintf("cases[%d]", i)
		decode := func(raw json.RawMessage, what string) (*unstructured.Unstructured, error) {
			if len(raw) == 0 {
				return nil, nil
			}
			// As the API server decodes a custom resource (unstructured: integers int64, other numbers float64).
			content := map[string]any{}
			if err := utiljson.Unmarshal(raw, &content); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", where, what, err)
			}
			u := &unstructured.Unstructured{Object: content}
			// The API server decodes a custom resource as its kind, in the request's namespace.
			u.SetGroupVersionKind(gvk)
			u.SetNamespace(c.Namespace)
			return u, nil
		}
		obj, err := decode(c.Object, "object")
		if err != nil {
			return nil, err
		}
		old, err := decode(c.OldObject, "oldObject")
		if err != nil {
			return nil, err
		}
		var op admission.Operation
		var options runtime.Object
		switch c.Operation {
		case "CREATE":
			op, options = admission.Create, &metav1.CreateOptions{}
		case "UPDATE":
			if old == nil {
				return nil, fmt.Errorf("%s: UPDATE needs oldObject", where)
			}
			op, options = admission.Update, &metav1.UpdateOptions{}
		default:
			return nil, fmt.Errorf("%s: operation %q: CREATE or UPDATE", where, c.Operation)
		}
		if obj == nil {
			return nil, fmt.Errorf("%s: object is required", where)
		}
		var oldObj runtime.Object
		if old != nil {
			oldObj = old
		}
		attrs := admission.NewAttributesRecord(obj, oldObj, gvk, c.Namespace, obj.GetName(), gvr, "", op, options, false, requester)
		rec := &recorder{}
		ctx := warning.WithWarningRecorder(context.Background(), rec)
		res := objectResult{Allowed: true, Warnings: []string{}}
		if err := validator.Validate(ctx, attrs, interfaces); err != nil {
			res.Allowed = false
			res.Message = err.Error()
			var status apierrors.APIStatus
			if errors.As(err, &status) {
				res.Code, res.Reason, res.Message = status.Status().Code, string(status.Status().Reason), status.Status().Message
			}
		}
		res.Warnings = append(res.Warnings, rec.warnings...)
		res.Cost = map[string]policyCost{}
		for j, pol := range policies {
			cost, applies, err := meters[j].cost(ctx, attrs, gvk, gvr, namespaces[c.Namespace], interfaces, authz)
			if err != nil {
				cost.Error, applies = err.Error(), true
			}
			if applies {
				res.Cost[pol.Name] = cost
			}
		}
		results[i] = res
	}
	out := map[string]any{"results": results}
	if in.CompileAs != "" {
		out["compileErrors"] = append([]string{}, compileErrors...)
	}
	return out, nil
}

// costMeter runs a policy's expressions as the validating plugin does (validating/plugin.go
// compilePolicy and validator.go Validate: the variables composed, the validations, then their
// messageExpressions on what is left of one budget) and reports what they cost.
type costMeter struct {
	conditions, validations, messages plugincel.ConditionEvaluator
	// One evaluator per variable, reading it alone (with what it reads) in a fresh composition.
	variables []plugincel.ConditionEvaluator
	names     []string
}

var withAuthz = plugincel.OptionalVariableDeclarations{HasAuthorizer: true}

func newCostMeter(p *admissionregistrationv1.ValidatingAdmissionPolicy) (*costMeter, error) {
	compiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return nil, err
	}
	vars := make([]plugincel.NamedExpressionAccessor, len(p.Spec.Variables))
	for i, v := range p.Spec.Variables {
		vars[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
	}
	compiler.CompileAndStoreVariables(vars, withAuthz, environment.StoredExpressions)
	m := &costMeter{}
	conditions := make([]plugincel.ExpressionAccessor, len(p.Spec.MatchConditions))
	for i := range p.Spec.MatchConditions {
		conditions[i] = (*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i])
	}
	m.conditions = compiler.CompileCondition(conditions, withAuthz, environment.StoredExpressions)
	validations := make([]plugincel.ExpressionAccessor, len(p.Spec.Validations))
	messages := []plugincel.ExpressionAccessor{}
	for i, v := range p.Spec.Validations {
		validations[i] = &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason}
		if v.MessageExpression != "" {
			messages = append(messages, &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression})
		}
	}
	m.validations = compiler.CompileCondition(validations, withAuthz, environment.StoredExpressions)
	m.messages = compiler.CompileCondition(messages, plugincel.OptionalVariableDeclarations{}, environment.StoredExpressions)
	for _, v := range p.Spec.Variables {
		probe := []plugincel.ExpressionAccessor{&validating.ValidationCondition{Expression: fmt.Sprintf("variables.%s == variables.%s", v.Name, v.Name)}}
		m.variables = append(m.variables, compiler.CompileCondition(probe, withAuthz, environment.StoredExpressions))
		m.names = append(m.names, v.Name)
	}
	return m, nil
}

// cost of one admission; not applied when a matchCondition is false.
func (m *costMeter) cost(ctx context.Context, attrs admission.Attributes, gvk schema.GroupVersionKind, gvr schema.GroupVersionResource, ns *corev1.Namespace, o admission.ObjectInterfaces, authz authorizer.Authorizer) (policyCost, bool, error) {
	versioned, err := admission.NewVersionedAttributes(attrs, gvk, o)
	if err != nil {
		return policyCost{}, false, err
	}
	request := plugincel.CreateAdmissionRequest(attrs, metav1.GroupVersionResource(gvr), metav1.GroupVersionKind(gvk))
	bindings := plugincel.OptionalVariableBindings{Authorizer: authz}
	namespace := plugincel.CreateNamespaceObject(ns)
	budget := int64(celconfig.RuntimeCELCostBudget)
	results, _, err := m.conditions.ForInput(ctx, versioned, request, bindings, namespace, budget)
	if err != nil {
		return policyCost{}, false, err
	}
	for _, r := range results {
		if r.Error != nil {
			return policyCost{}, false, r.Error
		}
		if r.EvalResult != celtypes.True {
			return policyCost{}, false, nil
		}
	}
	cost := policyCost{Variables: map[string]int64{}}
	for i, probe := range m.variables {
		results, rest, err := probe.ForInput(ctx, versioned, request, bindings, namespace, budget)
		if err != nil {
			return cost, true, err
		}
		if results[0].Error != nil {
			return cost, true, fmt.Errorf("variable %s: %w", m.names[i], results[0].Error)
		}
		cost.Variables[m.names[i]] = budget - rest
		if budget-rest > cost.MaxVariable {
			cost.MaxVariable, cost.Variable = budget-rest, m.names[i]
		}
	}
	results, left, err := m.validations.ForInput(ctx, versioned, request, bindings, namespace, budget)
	if err != nil {
		return cost, true, err
	}
	for _, r := range results {
		if r.Error != nil {
			return cost, true, r.Error
		}
	}
	_, left, err = m.messages.ForInput(ctx, versioned, request, plugincel.OptionalVariableBindings{}, namespace, left)
	if err != nil {
		return cost, true, err
	}
	cost.Total = budget - left
	return cost, true, nil
}

// compileAsNew compiles a policy's expressions as kube-apiserver does when it is sent one
// (k8s.io/kubernetes pkg/apis/admissionregistration/validation/validation.go: variables composed
// in order, validations and matchConditions with the authorizer, messageExpressions without,
// all as new expressions of the compatibility version), and returns every compile error.
func compileAsNew(p *admissionregistrationv1.ValidatingAdmissionPolicy, v *version.Version) []string {
	var out []string
	envSet := environment.MustBaseEnvSet(v)
	report := func(what string, r plugincel.CompilationResult) {
		if r.Error != nil {
			out = append(out, fmt.Sprintf("%s %s: %s: %v", p.Name, what, v, r.Error))
		}
	}
	compiler, err := plugincel.NewCompositedCompiler(envSet)
	if err != nil {
		return []string{err.Error()}
	}
	for i, variable := range p.Spec.Variables {
		report(fmt.Sprintf("spec.variables[%d] (%s)", i, variable.Name), compiler.CompileAndStoreVariable(&validating.Variable{Name: variable.Name, Expression: variable.Expression}, withAuthz, environment.NewExpressions))
	}
	for i, val := range p.Spec.Validations {
		report(fmt.Sprintf("spec.validations[%d].expression", i), compiler.CompileCELExpression(&validating.ValidationCondition{Expression: val.Expression}, withAuthz, environment.NewExpressions))
		if val.MessageExpression != "" {
			report(fmt.Sprintf("spec.validations[%d].messageExpression", i), compiler.CompileCELExpression(&validating.MessageExpressionCondition{MessageExpression: val.MessageExpression}, plugincel.OptionalVariableDeclarations{}, environment.NewExpressions))
		}
	}
	stateless := plugincel.NewCompiler(envSet)
	for i, m := range p.Spec.MatchConditions {
		report(fmt.Sprintf("spec.matchConditions[%d]", i), stateless.CompileCELExpression((*matchconditions.MatchCondition)(&m), withAuthz, environment.NewExpressions))
	}
	return out
}
