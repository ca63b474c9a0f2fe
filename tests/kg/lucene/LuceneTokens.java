// Prints the terms Lucene's StandardAnalyzer without stop words (Neo4j's full-text analyser
// "standard-no-stop-words") makes of each line of stdin: one output line per input line,
// terms separated by tabs. Run with the local Neo4j's jars on the class path:
//   java -cp 'kg/neo4j/launcher/target/lib/*' tests/kg/lucene/LuceneTokens.java < texts.txt
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.standard.StandardAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;

public class LuceneTokens {
    public static void main(String[] args) throws Exception {
        StandardAnalyzer analyzer = new StandardAnalyzer(CharArraySet.EMPTY_SET);
        BufferedReader in =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            StringBuilder row = new StringBuilder();
            try (TokenStream ts = analyzer.tokenStream("f", line)) {
                CharTermAttribute term = ts.addAttribute(CharTermAttribute.class);
                ts.reset();
                boolean first = true;
                while (ts.incrementToken()) {
                    if (!first) row.append('\t');
                    row.append(term.toString());
                    first = false;
                }
                ts.end();
            }
            out.println(row);
        }
        out.flush();
    }
}
