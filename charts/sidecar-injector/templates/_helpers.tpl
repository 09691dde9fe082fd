{{/* Names and labels shared by every template. */}}

{{- define "sidecar-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sidecar-injector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sidecar-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidecar-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sidecar-injector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sidecar-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sidecar-injector.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "sidecar-injector.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{- define "sidecar-injector.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The replicas write the CA into the webhook configuration themselves, except under cert-manager. */}}
{{/* injection.mode webhook (the default): a MutatingWebhookConfiguration, a Service and certificates. */}}
{{- define "sidecar-injector.webhook" -}}
{{- if ne .Values.injection.mode "policy" -}}true{{- end -}}
{{- end -}}

{{/* The replicas write the caBundle in every TLS mode, unless cert-manager's CA injector is asked to (tls.certManager.injectCa). */}}
{{- define "sidecar-injector.patchCaBundle" -}}
{{- if and (include "sidecar-injector.webhook" .) (not (and (eq .Values.tls.mode "cert-manager") .Values.tls.certManager.injectCa)) -}}true{{- end -}}
{{- end -}}

{{/* The ValidatingAdmissionPolicy (and its binding) refusing SidecarProfiles outside the limits at write (core/profile-policy.ts profilePolicyName). */}}
{{- define "sidecar-injector.profilePolicyName" -}}
{{- printf "%s-sidecarprofiles" (include "sidecar-injector.fullname" .) -}}
{{- end -}}

{{- define "sidecar-injector.prefix" -}}
{{- default "sidecar-injector.io" .Values.config.annotationPrefix -}}
{{- end -}}

{{/* Hardened container defaults (restricted Pod Security Standard). */}}
{{- define "sidecar-injector.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
