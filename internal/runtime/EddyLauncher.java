// Eddy's Java launcher: the actionloop child that the eddy runtime server
// starts for the "java" launcher, following OpenWhisk's Java runtime
// (openwhisk-runtime-java core/java8actionloop/lib/src/Launcher.java):
// the action is a class with
//
//     public static com.google.gson.JsonObject main(com.google.gson.JsonObject args)
//
// (or JsonArray in and out), named by init's "main": "Main" by default,
// "com.example.Hello" for its main method, "com.example.Hello#handle" for
// another method.
//
// Usage: java -cp <launcher>:<gson>:<action> EddyLauncher <class[#method]>
//
// It loads the class, acknowledges on fd 3 ({"ok":true}, or {"ok":false,
// "error":...} with the stack trace on stderr), then loops: read one JSON
// line from stdin, export every key but "value" as __OW_<KEY> (in
// System.getenv's map, which needs --add-opens java.base/java.util), call
// the method and write its result as one JSON line on fd 3. An exception
// thrown by the action goes to stderr and its message is the result's
// "error", as upstream does.

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.Map;

public class EddyLauncher {
    private static Map<String, String> writableEnv() {
        try {
            Map<String, String> env = System.getenv();
            for (Class<?> cl : Collections.class.getDeclaredClasses()) {
                if ("java.util.Collections$UnmodifiableMap".equals(cl.getName())) {
                    Field field = cl.getDeclaredField("m");
                    field.setAccessible(true);
                    @SuppressWarnings("unchecked")
                    Map<String, String> m = (Map<String, String>) field.get(env);
                    return m;
                }
            }
        } catch (Exception e) {
            System.err.println("EddyLauncher: __OW_ variables are not available: " + e);
        }
        return null;
    }

    private static Method find(Class<?> cls, String name, Class<?> arg) {
        try {
            Method m = cls.getMethod(name, arg);
            int mod = m.getModifiers();
            Class<?> ret = m.getReturnType();
            if (Modifier.isStatic(mod) && Modifier.isPublic(mod)
                    && (ret == JsonObject.class || ret == JsonArray.class)) {
                m.setAccessible(true);
                return m;
            }
        } catch (NoSuchMethodException e) {
            // not this signature
        }
        return null;
    }

    private static String message(Throwable t) {
        return t.getMessage() != null ? t.getMessage() : t.toString();
    }

    public static void main(String[] args) throws Exception {
        PrintWriter out = new PrintWriter(new OutputStreamWriter(
                new FileOutputStream("/proc/self/fd/3"), StandardCharsets.UTF_8));
        String spec = args.length > 0 && !args[0].isEmpty() ? args[0] : "Main";
        String className = spec;
        String methodName = "main";
        int hash = spec.indexOf('#');
        if (hash >= 0) {
            className = spec.substring(0, hash);
            if (hash + 1 < spec.length()) {
                methodName = spec.substring(hash + 1);
            }
        }
        Method onObject;
        Method onArray;
        try {
            Class<?> cls = Class.forName(className);
            onObject = find(cls, methodName, JsonObject.class);
            onArray = find(cls, methodName, JsonArray.class);
            if (onObject == null && onArray == null) {
                throw new NoSuchMethodException("the class " + className
                        + " has no public static JsonObject " + methodName + "(JsonObject)");
            }
        } catch (Throwable t) {
            t.printStackTrace(System.err);
            System.err.flush();
            JsonObject ack = new JsonObject();
            ack.addProperty("ok", false);
            ack.addProperty("error", t instanceof ClassNotFoundException
                    ? "the action has no class named " + className : message(t));
            out.println(ack.toString());
            out.flush();
            System.exit(1);
            return;
        }
        Map<String, String> env = writableEnv();
        out.println("{\"ok\":true}");
        out.flush();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            JsonObject error = new JsonObject();
            String result;
            try {
                JsonElement msg = JsonParser.parseString(line);
                JsonElement value = new JsonObject();
                for (Map.Entry<String, JsonElement> e : msg.getAsJsonObject().entrySet()) {
                    if (e.getKey().equals("value")) {
                        value = e.getValue();
                    } else if (env != null) {
                        JsonElement v = e.getValue();
                        env.put("__OW_" + e.getKey().toUpperCase(),
                                v.isJsonPrimitive() ? v.getAsString() : v.toString());
                    }
                }
                Method m = value.isJsonArray() ? onArray : onObject;
                if (m == null) {
                    throw new IllegalArgumentException("the action's " + methodName + " does not take a "
                            + (value.isJsonArray() ? "JsonArray" : "JsonObject"));
                }
                Object res = m.invoke(null, value);
                if (res == null) {
                    System.out.println("the action returned null");
                    error.addProperty("error", "the action returned null");
                    result = error.toString();
                } else {
                    result = res.toString();
                }
            } catch (InvocationTargetException ite) {
                Throwable t = ite.getCause() != null ? ite.getCause() : ite;
                t.printStackTrace(System.err);
                error.addProperty("error", message(t));
                result = error.toString();
            } catch (Exception ex) {
                ex.printStackTrace(System.err);
                error.addProperty("error", message(ex));
                result = error.toString();
            }
            System.out.flush();
            System.err.flush();
            out.println(result);
            out.flush();
        }
    }
}
