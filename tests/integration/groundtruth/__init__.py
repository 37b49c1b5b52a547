"""Ground truth for the classifier: what the running kernel does with every key under /proc/sys.

``measure.measure()`` establishes it in throwaway namespaces (see that module's docstring);
``compare`` scores the classifier and the runtimes' prefix rule against it.
"""
