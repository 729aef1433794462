"""
### Spot-check retweets: how precise are the retweets, as people see them?

Every day (or by hand), **pull** reads the answers of the Label Studio project "Retweet
spot-check" into `spot_checks` and refreshes `retweet_precision`: per model version and over
all, the share of labeled retweets people called AI, with its 95 % Wilson score interval (the
dashboard's "Retweet precision (spot-check)"). Then **push** samples `size` (default
`SPOT_CHECK_SIZE`, 20) of the tweets the retweet policy accepted (`retweeted` or
`would_retweet`) at random (those of one `model_version`, if given), never one twice, and
adds them to that project: its own task type, the annotate stage's interface and labeling
guide, no model probability shown. Label Studio down: the tasks fail with a clear message and
retry. Logic: `ai_tweets.spot_check`.
"""

from datetime import timedelta

from airflow.sdk import Param, dag

from ai_tweets.dag_support import every, pipeline_dag, stage_task
from ai_tweets.spot_check import pull, push


@dag(
    schedule=every("30 6 * * *"),
    **pipeline_dag(
        __doc__,
        tags=["retweet", "label-studio", "quality"],
        retries=3,
        render_template_as_native_obj=True,  # a null size reaches push as None
        params={"size": Param(None, type=["null", "integer"], minimum=0,
                              description="retweets to sample (null: SPOT_CHECK_SIZE)"),
                "model_version": Param(None, type=["null", "string"],
                                       description="sample only the retweets this version called AI (null: any)")},
    ),
)
def spot_check_retweets():
    pulled = stage_task(pull, task_id="pull", execution_timeout=timedelta(minutes=10))()
    pushed = stage_task(push, task_id="push", execution_timeout=timedelta(minutes=10))("{{ params.size }}",
                                                                                       "{{ params.model_version }}")
    pulled >> pushed


spot_check_retweets()
