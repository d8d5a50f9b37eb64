{{/*
The chart name, or nameOverride; a DNS label (63 characters at most, no trailing "-").
*/}}
{{- define "minio.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the resources: fullnameOverride, else the release name when it already holds the
chart name (release "minio" -> "minio"), else <release>-<name>. 63 characters at most.
*/}}
{{- define "minio.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The StatefulSet name: the full name cut to 52 characters, because the controller labels each
revision "<name>-<hash of up to 10 characters>" and a label value holds 63 at most.
*/}}
{{- define "minio.statefulsetName" -}}
{{- include "minio.fullname" . | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, as the helm.sh/chart label.
*/}}
{{- define "minio.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels of every resource.
*/}}
{{- define "minio.labels" -}}
{{ include "minio.commonLabels" . }}
{{ include "minio.selectorLabels" . }}
app.kubernetes.io/component: object-storage
{{- end }}

{{/*
Labels every object of the release carries, without the selector labels (the test hook pod must
not match the Service's selector).
*/}}
{{- define "minio.commonLabels" -}}
helm.sh/chart: {{ include "minio.chart" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: lakehouse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: stable for the life of the release.
*/}}
{{- define "minio.selectorLabels" -}}
app.kubernetes.io/name: {{ include "minio.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The image reference: repository:tag@digest (the digest is what the runtime pulls).
*/}}
{{- define "minio.image" -}}
{{- printf "%s:%s@%s" .Values.image.repository .Values.image.tag .Values.image.digest }}
{{- end }}

{{/*
The key of a config file in the Secret or ConfigMap: its path with "/" replaced by "__".
*/}}
{{- define "minio.configKey" -}}
{{- replace "/" "__" . }}
{{- end }}

{{/*
Items of a projected Secret or ConfigMap source: each file of the wanted kind (.secret), its key
mapped back to its path under configDir.
*/}}
{{- define "minio.configItems" -}}
{{- $items := list }}
{{- range .files }}
{{- if eq .secret $.secret }}
{{- $items = append $items (dict "key" (include "minio.configKey" .path) "path" .path) }}
{{- end }}
{{- end }}
{{- toYaml $items }}
{{- end }}

{{/*
The CA file the test hook trusts: the first public file under certs/CAs/, else certs/public.crt.
*/}}
{{- define "minio.caFile" -}}
{{- $ca := "certs/public.crt" }}
{{- range .Values.config.files }}
{{- if and (not .secret) (hasPrefix "certs/CAs/" .path) (eq $ca "certs/public.crt") }}
{{- $ca = .path }}
{{- end }}
{{- end }}
{{- $ca }}
{{- end }}
