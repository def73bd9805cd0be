{{/* Names and labels shared by the templates. */}}

{{- define "atoll.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "atoll.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "atoll.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atoll.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: hub
{{- end -}}

{{- define "atoll.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "atoll.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The URL scheme of the API: https once a TLS Secret is given. */}}
{{- define "atoll.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/* Checks the values that only make sense together. */}}
{{- define "atoll.validate" -}}
{{- if not .Values.database.existingSecret -}}
{{- fail "database.existingSecret is required: a Secret holding the PostgreSQL URL (key database.key)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.nats.urls) -}}
{{- fail "replicas > 1 needs nats.urls: hubs that each embed their own NATS would not share members" -}}
{{- end -}}
{{- if and .Values.nats.urls (not .Values.nats.leafAdvertise) -}}
{{- fail "nats.urls needs nats.leafAdvertise: the leafnode URLs of that cluster, which members connect to" -}}
{{- end -}}
{{- if not .Values.keyEncryption.keys -}}
{{- fail "keyEncryption.keys needs at least one key of the Secret: the first seals the NATS signing keys" -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the key-encryption keys: the given one, or the one
this chart makes. */}}
{{- define "atoll.keySecret" -}}
{{- .Values.keyEncryption.existingSecret | default (printf "%s-key" (include "atoll.fullname" .)) -}}
{{- end -}}

{{/* The Secret holding the first admin token: the given one, or the one
this chart makes. */}}
{{- define "atoll.adminTokenSecret" -}}
{{- .Values.adminToken.existingSecret | default (printf "%s-admin-token" (include "atoll.fullname" .)) -}}
{{- end -}}
