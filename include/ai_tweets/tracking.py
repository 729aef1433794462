"""MLflow's accounts and the names the pipeline owns there. The tracking server runs MLflow's
basic-auth app: every request but /health must sign in. The pipeline's account
(MLFLOW_TRACKING_USERNAME, `pipeline`) is the app's admin, created by the server at its first start
from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD; it writes the registry. People sign in as `viewer`,
which the app's default permission (READ) lets see everything and change nothing of the
pipeline's. The app lets any account create new experiments and models (and manage what it
created), so the stack creates the pipeline's own (the registered model MODEL_NAME and the
experiments below) as the pipeline before anyone else can: nobody else can then own the model
that serving loads, or the runs that hold its files. The clients of the pipeline get the login
from `Settings.mlflow_uri`.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from stackbase.settings import Settings

VIEWER = "viewer"
# The registered model's aliases: the version that decides (served, and scoring the stream),
# and the last one trained that did not replace it (scored in its shadow, awaiting approval).
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
# The pipeline's MLflow experiments: training runs (and the registered models' files), the
# LabelModel fits, `make quality`'s figures.
CLASSIFIER_EXPERIMENT = "ai-tweet-classifier"
WEAK_LABEL_EXPERIMENT = "ai-tweets-weak-labels"
QUALITY_EXPERIMENT = "ai-tweets-quality"
PIPELINE_EXPERIMENTS = (CLASSIFIER_EXPERIMENT, WEAK_LABEL_EXPERIMENT, QUALITY_EXPERIMENT)


class AccountError(RuntimeError):
    """MLflow refused to create or update an account."""


def _call(settings: Settings, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """MLflow's REST API at /api/2.0/mlflow/`path`, signed in as the pipeline: (status, answer)."""
    login = base64.b64encode(f"{settings.mlflow_username}:{settings.mlflow_password or ''}".encode()).decode()
    request = urllib.request.Request(f"{settings.mlflow_tracking_uri}/api/2.0/mlflow/{path}",
                                     data=None if body is None else json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json", "Authorization": f"Basic {login}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def ensure_viewer(settings: Settings, password: str) -> str:
    """Create the read-only `viewer` account, or set its password (`password`, from .env);
    signed in as the pipeline's admin account. Returns what was done."""
    status, answer = _call(settings, "POST", "users/create", {"username": VIEWER, "password": password})
    if status == 200:
        return f"created MLflow's read-only account {VIEWER!r}"
    if answer.get("error_code") != "RESOURCE_ALREADY_EXISTS":
        raise AccountError(f"MLflow refused to create {VIEWER!r}: HTTP {status} {answer.get('message', '')}".strip())
    status, answer = _call(settings, "PATCH", "users/update-password", {"username": VIEWER, "password": password})
    if status != 200:
        raise AccountError(f"MLflow refused to set {VIEWER!r}'s password: HTTP {status} "
                           f"{answer.get('message', '')}".strip())
    return f"set the password of MLflow's read-only account {VIEWER!r}"


def claim_pipeline_names(settings: Settings) -> list[str]:
    """Create the registered model MODEL_NAME and the pipeline's experiments, as the pipeline's
    account, where they do not exist yet. Returns what was created."""
    from urllib.parse import quote

    created = []
    wanted = [(f"registered-models/get?name={quote(settings.model_name)}", "registered-models/create",
               {"name": settings.model_name}, f"registered model {settings.model_name!r}")]
    wanted += [(f"experiments/get-by-name?experiment_name={quote(name)}", "experiments/create", {"name": name},
                f"experiment {name!r}") for name in PIPELINE_EXPERIMENTS]
    for probe, create, body, what in wanted:
        status, answer = _call(settings, "GET", probe)
        if status == 200:
            continue
        if answer.get("error_code") != "RESOURCE_DOES_NOT_EXIST":
            raise AccountError(f"MLflow answered HTTP {status} for {what}: {answer.get('message', '')}".strip())
        status, answer = _call(settings, "POST", create, body)
        if status != 200 and answer.get("error_code") != "RESOURCE_ALREADY_EXISTS":
            raise AccountError(f"MLflow refused to create {what}: HTTP {status} {answer.get('message', '')}".strip())
        created.append(f"created the pipeline's {what}")
    return created
