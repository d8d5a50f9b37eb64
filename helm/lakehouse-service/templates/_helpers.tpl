{{/*
Labels of every object of the release; the component's objects add app.kubernetes.io/component.
*/}}
{{- define "lakehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Values.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: lakehouse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the pods of a component or job: who they are and which contracts they consume.
Call with (dict "root" $ "component" $component).
*/}}
{{- define "lakehouse.podLabels" -}}
{{ include "lakehouse.labels" .root }}
app.kubernetes.io/component: {{ .component.name }}
{{- range .root.Values.consumes }}
lakehouse/consumes-{{ . }}: "true"
{{- end }}
{{- end }}

{{/*
Selector labels of one component's pods: stable for the life of the release.
Call with (dict "root" $ "component" $component).
*/}}
{{- define "lakehouse.selector" -}}
app.kubernetes.io/name: {{ .root.Values.name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component.name }}
{{- end }}

{{/*
The image reference: repository:tag@digest (the digest is what the runtime uses).
*/}}
{{- define "lakehouse.image" -}}
{{- printf "%s:%s@%s" .Values.image.repository .Values.image.tag .Values.image.digest }}
{{- end }}

{{/*
Items of a projected Secret or ConfigMap source: the files of one kind (.secret), each key (its
path with "/" as "__") mapped back to its path under the config directory.
*/}}
{{- define "lakehouse.configItems" -}}
{{- $items := list }}
{{- range .files }}
{{- if eq .secret $.secret }}
{{- $items = append $items (dict "key" (replace "/" "__" .path) "path" .path) }}
{{- end }}
{{- end }}
{{- toYaml $items }}
{{- end }}

{{/*
A probe from the descriptor: an HTTP GET on a port, a TCP connection to it, or a command. By
number: a probe may reach a port of another container of its pod (a server behind its front).
*/}}
{{- define "lakehouse.probe" -}}
{{- if .command }}
exec:
  command: {{ toJson .command }}
{{- else if eq .scheme "tcp" }}
tcpSocket:
  port: {{ .number }}
{{- else }}
httpGet:
  path: {{ .path }}
  port: {{ .number }}
  scheme: {{ upper .scheme }}
{{- end }}
{{- end }}

{{/*
The volumes of a pod that runs a component's program (its workload, init containers, jobs): the
projected config, a writable /tmp and home on a read-only root file system. Call with
(dict "root" $ "c" $component).
*/}}
{{- define "lakehouse.podVolumes" -}}
- name: config
  projected:
    defaultMode: 288  # 0440: readable by the owner and the fsGroup only
    sources:
      {{- if .c.config.secretFiles }}
      - secret:
          name: {{ .c.config.name }}
          items:
            {{- include "lakehouse.configItems" (dict "files" .c.config.files "secret" true) | nindent 12 }}
      {{- end }}
      {{- if .c.config.publicFiles }}
      - configMap:
          name: {{ .c.config.name }}
          items:
            {{- include "lakehouse.configItems" (dict "files" .c.config.files "secret" false) | nindent 12 }}
      {{- end }}
- name: tmp
  emptyDir: {}
{{- if not .c.homeIsVolume }}
- name: home
  emptyDir: {}
{{- end }}
{{- range $i, $path := .c.writable }}
- name: writable-{{ $i }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/*
The mounts that match lakehouse.podVolumes, plus the component's own volumes.
*/}}
{{- define "lakehouse.mounts" -}}
- name: config
  mountPath: {{ .c.config.dir }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if not .c.homeIsVolume }}
- name: home
  mountPath: {{ .c.home }}
{{- end }}
{{- range $i, $path := .c.writable }}
- name: writable-{{ $i }}
  mountPath: {{ $path }}
{{- end }}
{{- range .c.volumes }}
- name: {{ .name }}
  mountPath: {{ .path }}
{{- end }}
{{- end }}

{{/*
The environment of a component's program, sorted by name, plain values only.
*/}}
{{- define "lakehouse.env" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/*
Every port of a component's pod (its own and its sidecars'), as JSON: read it back with
fromJsonArray. Call with the component.
*/}}
{{- define "lakehouse.podPorts" -}}
{{- $ports := list }}
{{- range $k := prepend .sidecars . }}{{ range $k.ports }}{{ $ports = append $ports . }}{{ end }}{{ end }}
{{- toJson $ports }}
{{- end }}

{{/*
One container of a component's pod: the program of component .k (the pod's own component .c, or
one of its sidecars) with the pod's mounts. Call with (dict "root" $ "c" $component "k" $container).
A sidecar has no readiness probe: the pod is behind its Service while its own component is ready
(an orchestrator's front), and a sidecar's probe gates its start and restarts it when it fails.
*/}}
{{- define "lakehouse.container" -}}
- name: {{ .k.name }}
  image: {{ include "lakehouse.image" .root | quote }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: {{ toJson .k.command }}
  args: {{ toJson .k.args }}
  workingDir: {{ .c.home }}
  {{- with .k.env }}
  env:
    {{- include "lakehouse.env" . | trim | nindent 4 }}
  {{- end }}
  {{- with .k.ports }}
  ports:
    {{- range . }}
    - name: {{ .name }}
      containerPort: {{ .port }}
      protocol: TCP
    {{- end }}
  {{- end }}
  # Startup allows as long as the systemd engine waits; then liveness and readiness take over.
  startupProbe:
    {{- include "lakehouse.probe" .k.health.liveness | trim | nindent 4 }}
    periodSeconds: {{ .k.health.delay }}
    timeoutSeconds: 5
    failureThreshold: {{ .k.health.retries }}
  livenessProbe:
    {{- include "lakehouse.probe" .k.health.liveness | trim | nindent 4 }}
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  {{- if eq .k.name .c.name }}
  readinessProbe:
    {{- include "lakehouse.probe" .k.health.readiness | trim | nindent 4 }}
    periodSeconds: {{ .k.health.delay }}
    timeoutSeconds: 5
    failureThreshold: 3
  {{- end }}
  {{- with .k.stop.command }}
  lifecycle:
    # The same graceful stop as the unit's ExecStop; the kubelet signals after it returns.
    preStop:
      exec:
        command: {{ toJson . }}
  {{- end }}
  resources:
    {{- toYaml .k.resources | nindent 4 }}
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "lakehouse.mounts" (dict "c" .c) | nindent 4 }}
{{- end }}
