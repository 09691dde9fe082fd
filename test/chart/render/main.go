// Command render does what `helm template` does for this chart, with the
// same engine Helm uses: Go's text/template plus the sprig function library,
// and Helm's own additions (include, tpl, required, toYaml, fromYaml, toJson,
// fail, lookup returning nothing). There is no helm binary on the machines
// that test this chart; see the README for what this does not cover.
//
//	render -chart DIR -name RELEASE -namespace NS [-f values.yaml]... [-notes] [-upgrade]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// chartFiles answers .Files.Get: a file of the chart, by its path from the chart's root (Helm's Files.Get).
type chartFiles string

func (c chartFiles) Get(name string) string {
	data, err := os.ReadFile(filepath.Join(string(c), name))
	if err != nil {
		return ""
	}
	return string(data)
}

// apiVersions answers .Capabilities.APIVersions.Has.
type apiVersions []string

func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// merge applies Helm's rules for user values: maps merge key by key, anything
// else replaces, and null deletes the key.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	name := flag.String("name", "sidecar-injector", "release name")
	namespace := flag.String("namespace", "sidecar-injector", "release namespace")
	notes := flag.Bool("notes", false, "print NOTES.txt instead of the manifests")
	upgrade := flag.Bool("upgrade", false, "render as an upgrade (.Release.IsUpgrade)")
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	flag.Parse()
	if err := run(*chartDir, *name, *namespace, files, *notes, *upgrade); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func run(chartDir, name, namespace string, files []string, notes, upgrade bool) error {
	chartMeta, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		user, err := readYAML(f)
		if err != nil {
			return err
		}
		values = merge(values, user)
	}
	chartName, _ := chartMeta["name"].(string)
	data := map[string]interface{}{
		"Values": values,
		"Files":  chartFiles(chartDir),
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm", "Revision": 1,
			"IsInstall": !upgrade, "IsUpgrade": upgrade,
		},
		"Chart": map[string]interface{}{
			"Name": chartName, "Version": chartMeta["version"], "AppVersion": chartMeta["appVersion"],
			"Description": chartMeta["description"], "KubeVersion": chartMeta["kubeVersion"],
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "GitVersion": "v1.30.0", "Major": "1", "Minor": "30"},
			"APIVersions": apiVersions{"v1", "apps/v1", "batch/v1", "policy/v1", "rbac.authorization.k8s.io/v1", "admissionregistration.k8s.io/v1"},
			"HelmVersion": map[string]interface{}{"Version": "v3.15.0"},
		},
	}

	root := template.New("gotpl")
	funcs := sprig.TxtFuncMap()
	// Helm removes these two: a chart must not read the environment of whoever renders it.
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	root.Funcs(funcs).Option("missingkey=zero")

	paths, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	var names []string
	for _, p := range paths {
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tname := chartName + "/templates/" + filepath.Base(p)
		if _, err := root.New(tname).Parse(string(text)); err != nil {
			return err
		}
		names = append(names, tname)
	}

	var out bytes.Buffer
	for _, tname := range names {
		base := filepath.Base(tname)
		isNotes := base == "NOTES.txt"
		if strings.HasPrefix(base, "_") || isNotes != notes {
			continue
		}
		var buf bytes.Buffer
		data["Template"] = map[string]interface{}{"Name": tname, "BasePath": chartName + "/templates"}
		if err := root.ExecuteTemplate(&buf, tname, data); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if notes {
			out.WriteString(text)
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
				continue
			}
			doc = strings.TrimPrefix(strings.TrimLeft(doc, "\n"), "---\n")
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", tname, strings.TrimRight(doc, "\n "))
		}
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}
