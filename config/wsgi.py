import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web process: its queries get the web statement_timeout (config/settings.py).
os.environ.setdefault("VIGIL_PROCESS", "web")
application = get_wsgi_application()

# The clinical reference (units, plausible ranges) and the problem table, parsed when a web
# worker starts rather than on the first patient request that needs them (~100 ms).
from monitoring.problems import problem_table  # noqa: E402
from monitoring.units import metric_units  # noqa: E402

metric_units()
problem_table()
