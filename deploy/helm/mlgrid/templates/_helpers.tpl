{{/* Release-scoped name, capped at 63 characters as Kubernetes names must be. */}}
{{- define "mlgrid.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mlgrid.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "tracking"). */}}
{{- define "mlgrid.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlgrid.image" -}}
{{- if not .Values.image.repository -}}
{{- fail "set image.repository to where you pushed mlgrid's image (make image && make push REGISTRY=registry.example.com/ml, then --set image.repository=registry.example.com/ml/mlgrid): no public registry publishes it" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Refusals that must stop an install before anything is created. */}}
{{- define "mlgrid.validate" -}}
{{- $_ := include "mlgrid.image" . -}}
{{- if not .Values.allowDefaultPasswords -}}
{{- if and .Values.postgresql.enabled (not .Values.store.uri) (not .Values.store.existingSecret) (eq .Values.postgresql.password "mlgrid") -}}
{{- fail "postgresql.password is the chart's default: set a real one (or store.uri / store.existingSecret), or allowDefaultPasswords=true for a throwaway trial" -}}
{{- end -}}
{{- if and .Values.minio.enabled (eq .Values.minio.rootPassword "mlgrid-secret") -}}
{{- fail "minio.rootPassword is the chart's default: set a real one, or allowDefaultPasswords=true for a throwaway trial" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.projects.enabled (gt (int .Values.projects.replicas) 1) -}}
{{- fail "projects.replicas must be 1: a run is owned by the replica that started it and its state is not shared between replicas yet (issue #17)" -}}
{{- end -}}
{{- if and .Values.ingress.http.enabled (not .Values.gateway.rest.enabled) -}}
{{- fail "ingress.http routes to MLflow's REST API, which gateway.rest.enabled=false turns off: enable both or neither" -}}
{{- end -}}
{{- if .Values.auth.enabled -}}
{{- fail "auth.enabled: authentication at the gateway is not in this version yet (issue #13); leave it false" -}}
{{- end -}}
{{- end -}}

{{/* The pod- and container-level security settings every pod of the chart gets. */}}
{{- define "mlgrid.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "mlgrid.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* host:port of the gateway inside the cluster (services reach each other through it). */}}
{{- define "mlgrid.gatewayTarget" -}}
{{- printf "%s-gateway:%d" (include "mlgrid.fullname" .) (int .Values.gateway.port) -}}
{{- end -}}

{{- define "mlgrid.storeSecret" -}}
{{- default (printf "%s-store" (include "mlgrid.fullname" .)) .Values.store.existingSecret -}}
{{- end -}}

{{- define "mlgrid.s3Secret" -}}
{{- default (printf "%s-s3" (include "mlgrid.fullname" .)) .Values.s3.existingSecret -}}
{{- end -}}

{{- define "mlgrid.storeUri" -}}
{{- if .Values.store.uri -}}
{{- .Values.store.uri -}}
{{- else if .Values.postgresql.enabled -}}
{{- $pg := .Values.postgresql -}}
{{- /* urlquery encodes @ : / ? # % (and a space as "+", which a URI's user part reads
  literally: turn it into %20; a literal "+" was already %2B). */ -}}
{{- $user := $pg.username | urlquery | replace "+" "%20" -}}
{{- $password := $pg.password | urlquery | replace "+" "%20" -}}
{{- printf "postgresql://%s:%s@%s-postgresql:5432/%s" $user $password (include "mlgrid.fullname" .) ($pg.database | urlquery | replace "+" "%20") -}}
{{- else -}}
{{- fail "set store.uri or store.existingSecret, or enable postgresql" -}}
{{- end -}}
{{- end -}}

{{- define "mlgrid.artifactRoot" -}}
{{- if .Values.defaultArtifactRoot -}}
{{- .Values.defaultArtifactRoot -}}
{{- else if .Values.minio.enabled -}}
{{- printf "s3://%s/artifacts" .Values.minio.bucket -}}
{{- else -}}
{{- fail "set defaultArtifactRoot (s3://bucket/prefix), or enable minio" -}}
{{- end -}}
{{- end -}}

{{- define "mlgrid.s3Endpoint" -}}
{{- if .Values.s3.endpointUrl -}}
{{- .Values.s3.endpointUrl -}}
{{- else if .Values.minio.enabled -}}
{{- printf "http://%s-minio:9000" (include "mlgrid.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment that points a process at the tracking/registry stores (from the Secret). */}}
{{- define "mlgrid.storeEnv" -}}
- name: MLGRID_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.storeSecret" . }}
      key: backend-store-uri
- name: MLGRID_REGISTRY_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.storeSecret" . }}
      key: registry-store-uri
      optional: true
{{- end -}}

{{- define "mlgrid.s3Env" -}}
{{- with (include "mlgrid.s3Endpoint" .) }}
- name: MLGRID_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.s3Secret" . }}
      key: AWS_ACCESS_KEY_ID
      optional: true
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "mlgrid.s3Secret" . }}
      key: AWS_SECRET_ACCESS_KEY
      optional: true
{{- end -}}

{{- define "mlgrid.projectsServiceAccount" -}}
{{- if .Values.projects.serviceAccount.create -}}
{{- default (printf "%s-projects" (include "mlgrid.fullname" .)) .Values.projects.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.projects.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Namespace of the Jobs the projects service's kubernetes backend creates. */}}
{{- define "mlgrid.projectsJobNamespace" -}}
{{- default .Release.Namespace .Values.projects.kubernetes.namespace -}}
{{- end -}}


{{/* Name of the projects service's state claim. */}}
{{- define "mlgrid.projectsClaim" -}}
{{- $p := .Values.projects.persistence -}}
{{- default (default (printf "%s-projects-state" (include "mlgrid.fullname" .)) .Values.projects.stateClaim) $p.existingClaim -}}
{{- end -}}
