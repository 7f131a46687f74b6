{{/* Checks across values that the schema cannot express; included by the templates they
concern, first, so that their message is the one a user sees. */}}
{{- define "stead.exposureCheck" -}}
{{- if and .Values.ingress.enabled .Values.httpRoute.enabled -}}
{{- fail "set ingress.enabled or httpRoute.enabled, not both" -}}
{{- end -}}
{{- end -}}

{{/* What the release installs ("true" or empty, for `if`). A self_hosted_data_plane release
with a listener id is a listener; without one it is the seed's shape: the servers themselves,
reporting to the control plane when global.control_plane_url is set. */}}
{{- define "stead.runsListener" -}}
{{- if and (eq .Values.global.deployment_type "self_hosted_data_plane") .Values.listener.listenerId -}}
true
{{- end -}}
{{- end -}}

{{- define "stead.runsServer" -}}
{{- if and (ne .Values.global.deployment_type "self_hosted_control_plane") (not (include "stead.runsListener" .)) -}}
true
{{- end -}}
{{- end -}}

{{- define "stead.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stead.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stead.labels" -}}
app.kubernetes.io/name: {{ include "stead.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "stead.selector" -}}
app.kubernetes.io/name: {{ include "stead.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A tag, or a digest given as the tag ("@sha256:..."). */}}
{{- define "stead.image" -}}
{{- $tag := toString .Values.dataPlane.image.tag -}}
{{ .Values.dataPlane.image.repository }}{{ ternary $tag (printf ":%s" $tag) (hasPrefix "@" $tag) }}
{{- end -}}

{{/* The Secret every Stead container reads its environment from. */}}
{{- define "stead.secretName" -}}
{{ include "stead.fullname" . }}-env
{{- end -}}

{{- define "stead.postgresSecret" -}}
{{- if and (not .Values.postgres.enabled) .Values.postgres.external.existingSecret -}}
{{ .Values.postgres.external.existingSecret }}
{{- else -}}
{{ include "stead.secretName" . }}
{{- end -}}
{{- end -}}

{{- define "stead.postgresKey" -}}
{{- if and (not .Values.postgres.enabled) .Values.postgres.external.existingSecret -}}
{{ .Values.postgres.external.existingSecretKey }}
{{- else -}}
DATABASE_URI
{{- end -}}
{{- end -}}

{{- define "stead.redisSecret" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret -}}
{{ .Values.redis.external.existingSecret }}
{{- else -}}
{{ include "stead.secretName" . }}
{{- end -}}
{{- end -}}

{{- define "stead.redisKey" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret -}}
{{ .Values.redis.external.existingSecretKey }}
{{- else -}}
REDIS_URI
{{- end -}}
{{- end -}}

{{/* Environment of every Stead container: settings in plain values, connection strings and the
user's env only through Secret references. */}}
{{- define "stead.env" -}}
{{- if and (eq .Values.global.deployment_type "self_hosted_data_plane") .Values.global.control_plane_url }}
- name: DEPLOYMENT_TYPE
  value: self_hosted_data_plane
- name: CONTROL_PLANE_URL
  value: {{ .Values.global.control_plane_url | quote }}
- name: STEAD_DEPLOYMENT_NAME
  value: {{ include "stead.fullname" . | quote }}
{{- else }}
- name: DEPLOYMENT_TYPE
  value: standalone
{{- end }}
- name: BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS
  value: {{ .Values.config.shutdownGraceSeconds | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: LOG_JSON
  value: {{ .Values.config.logJson | quote }}
- name: DATABASE_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "stead.postgresSecret" . }}
      key: {{ include "stead.postgresKey" . }}
- name: REDIS_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "stead.redisSecret" . }}
      key: {{ include "stead.redisKey" . }}
{{- end -}}

{{- define "stead.envFrom" -}}
- secretRef:
    name: {{ include "stead.secretName" . }}
{{- end -}}

{{- define "stead.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* `stead migrate` before the process starts: it takes PostgreSQL's advisory lock, so replicas
starting together take turns, and it retries (the pod restarts it) until the database answers. */}}
{{- define "stead.migrateInit" -}}
- name: migrate
  image: {{ include "stead.image" . }}
  imagePullPolicy: {{ .Values.dataPlane.image.pullPolicy }}
  args: ["migrate"]
  env:
    {{- include "stead.env" . | nindent 4 }}
  envFrom:
    {{- include "stead.envFrom" . | nindent 4 }}
  resources:
    requests: {memory: 256Mi, cpu: 100m}
    limits: {memory: 512Mi, cpu: 500m}
  securityContext:
    {{- include "stead.containerSecurity" . | nindent 4 }}
  volumeMounts:
    - {name: tmp, mountPath: /tmp}
{{- end -}}
